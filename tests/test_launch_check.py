"""Launching on a busy machine: a server that is up but slow to answer still counts as reachable
(Gradio's own check gives up at its first 3 s timeout and refuses to start)."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gradio import networking

from studio.web.startup_check import patient_launch_check, reachable


class SlowHandler(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        time.sleep(4)  # longer than Gradio's 3 s timeout
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slow_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def test_a_slow_server_is_reachable_where_gradios_check_gives_up(slow_url):
    original = networking.url_ok
    assert original(slow_url) is False  # what made launches fail under load
    with patient_launch_check():
        assert networking.url_ok is reachable and networking.url_ok(slow_url) is True
    assert networking.url_ok is original  # only while launching


def test_nothing_listening_is_unreachable_after_the_patience():
    assert reachable("http://127.0.0.1:9/", patience=1) is False
