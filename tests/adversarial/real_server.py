"""A studio server in its own process, started with `python -m studio serve` as a user would, for the
attacks that need the real HTTP stack (uvicorn's framing, signals, the process's own memory and
sockets). It binds 127.0.0.2: a loopback address the studio treats as public (credentials required)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.browser.conftest import free_port

USER, PASSWORD = "artist", "correct horse"
HOST = "127.0.0.2"


class RealServer:
    def __init__(self, root: Path, extra: list[str] | None = None, env: dict[str, str] | None = None,
                 auth: bool = True) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        args = [sys.executable, "-m", "studio", "serve", "--no-browser", "--host", HOST, "--port", str(self.port),
                "--outputs-dir", str(root / "outputs"), "--models-dir", str(root / "models"),
                "--styles-file", str(root / "styles.csv"), *(["--auth", f"{USER}:{PASSWORD}"] if auth else []),
                *(extra or [])]
        self.log_path = root / "server.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 300) -> "RealServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[-3000:]}")
            if "Diffusion Studio running on" in self.output():  # printed once launch() has returned
                return self
            time.sleep(0.5)
        raise TimeoutError(f"server did not start: {self.output()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=60)
        self.log.close()
