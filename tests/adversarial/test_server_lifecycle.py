"""The server process itself: its start output, uvicorn's limits, and SIGTERM (issue 22 item 21,
issue 25 items 16 and 17). Exits are checked against a generous 60 s guard: the assertion is that
the process did exit, with status 0, and logged its shutdown (how fast goes in benchmarks/)."""
from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from studio.web.server_limits import H11_MAX_HEADER_BYTES
from tests.adversarial.real_server import HOST, PASSWORD, USER, RealServer

GUARD = 60


def terminate(server: RealServer) -> int | None:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=GUARD)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def server(tmp_path: Path):
    running = RealServer(tmp_path)
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory):
    """One started server for the checks that leave it as it was; the idle SIGTERM test, last in
    this file, ends it (a start costs a Python, torch and model load)."""
    running = RealServer(tmp_path_factory.mktemp("idle"))
    try:
        yield running.wait_ready()
    finally:
        running.stop()


def test_the_start_output_has_our_url_and_not_gradios_share_hint(idle_server):
    server = idle_server
    output = server.output()
    assert f"Diffusion Studio running on http://{HOST}:{server.port}" in output
    assert "share=True" not in output and "launch()" not in output


def test_uvicorn_closes_silent_connections_and_refuses_huge_headers(idle_server):
    server = idle_server
    with socket.create_connection((HOST, server.port), timeout=GUARD) as silent:
        assert silent.recv(1) == b""  # closed by the server (keep-alive timeout armed at connect), not by our guard
    with socket.create_connection((HOST, server.port), timeout=GUARD) as huge:
        # headers that never end: refused once their bytes pass the limit, not buffered without bound
        huge.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * H11_MAX_HEADER_BYTES))
        answer = huge.recv(64)
        assert answer.startswith(b"HTTP/1.1 4") or answer == b""
    assert httpx.get(server.url + "/sdapi/v1/samplers", auth=(USER, PASSWORD), timeout=120).status_code == 200


def test_sigterm_on_an_idle_server_exits_and_logs_it(idle_server):
    server = idle_server
    assert server.process.poll() is None  # still running after the checks above
    code = terminate(server)
    assert code == 0, f"exit status {code}:\n{server.output()[-2000:]}"
    assert "SIGTERM" in server.output()


def test_sigterm_during_a_job_exits_and_keeps_the_finished_images(server):
    job = {"prompt": "a red circle", "steps": 40, "n_iter": 60, "width": 64, "height": 64, "seed": 1,
           "save_images": True}
    threading.Thread(target=lambda: httpx.post(server.url + "/sdapi/v1/txt2img", json=job, auth=(USER, PASSWORD),
                                               timeout=GUARD * 20), daemon=True).start()
    outputs = server.root / "outputs"
    deadline = time.monotonic() + 600
    while not list(outputs.rglob("*.png")):
        assert time.monotonic() < deadline and server.process.poll() is None, "no image was saved"
        time.sleep(0.2)
    code = terminate(server)
    assert code == 0, f"exit status {code}:\n{server.output()[-2000:]}"
    saved = list(outputs.rglob("*.png"))
    assert 1 <= len(saved) < 60 and "SIGTERM" in server.output()
