"""/progress latency under a mixed load (issue 22): 32 concurrent clients on a real server started with
--threads 1 — 4 generate (txt2img 64², 8 steps), 4 send Extras (an 8² PNG scaled 8×), 24 poll /progress —
for DURATION seconds. Prints /progress p50/p99/max and the status codes seen (a benchmark, not a test:
the target is p99 < 250 ms and max < 1 s).

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python -m benchmarks.load_mix [seconds]
"""
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image

CLIENTS, GENERATORS, EXTRAS = 32, 4, 4
API = "/sdapi/v1"


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(duration: float = 30.0) -> dict:
    root = Path(tempfile.mkdtemp(prefix="load-mix-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "studio", "serve", "--no-browser", "--port", str(port),
                               "--threads", "1", "--outputs-dir", str(root / "outputs"), "--models-dir",
                               str(root / "models"), "--styles-file", str(root / "styles.csv")],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start")
                time.sleep(0.5)
        with httpx.Client(base_url=url, timeout=300) as warm:  # load the model before measuring
            warm.post(f"{API}/txt2img", json={"prompt": "warm", "steps": 1, "width": 64, "height": 64})
        return measure(url, duration)
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def measure(url: str, duration: float) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    extras = {"image": base64.b64encode(buffer.getvalue()).decode(), "upscaling_resize": 8, "upscaler_1": "Lanczos"}
    txt2img = {"prompt": "a red circle", "steps": 8, "width": 64, "height": 64, "sampler_name": "Euler"}
    latencies: list[float] = []
    codes: Counter = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def client(kind: str) -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while time.monotonic() < stop:
                started = time.perf_counter()
                if kind == "progress":
                    response = http.get(f"{API}/progress")
                elif kind == "generate":
                    response = http.post(f"{API}/txt2img", json=txt2img)
                else:
                    response = http.post(f"{API}/extra-single-image", json=extras)
                took = time.perf_counter() - started
                with lock:
                    codes[f"{kind} {response.status_code}"] += 1
                    if kind == "progress":
                        latencies.append(took)
                if kind == "progress":
                    time.sleep(0.05)
                elif response.status_code in (429, 503):
                    time.sleep(0.5)

    kinds = ["generate"] * GENERATORS + ["extras"] * EXTRAS + ["progress"] * (CLIENTS - GENERATORS - EXTRAS)
    threads = [threading.Thread(target=client, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    result = {"clients": CLIENTS, "seconds": duration, "progress_requests": len(latencies),
              "progress_p50_ms": round(pick(0.50), 1), "progress_p99_ms": round(pick(0.99), 1),
              "progress_max_ms": round(latencies[-1] * 1000, 1), "status": dict(sorted(codes.items()))}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0)
