"""Start-up as clients see it: the API is there as soon as the page is."""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx

from tests.browser.conftest import Server


def test_the_first_request_after_the_page_answers_reaches_the_api(tmp_path: Path):
    server = Server(tmp_path)
    try:
        deadline = time.monotonic() + 600
        while True:  # poll the page as a client would, then call the API at once
            assert time.monotonic() < deadline, "the server did not start"
            assert server.process.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(server.url, timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        response = httpx.post(server.url + "sdapi/v1/txt2img", timeout=300,
                              json={"prompt": "a red square", "steps": 1, "width": 64, "height": 64, "seed": 1})
        assert response.status_code == 200 and len(response.json()["images"]) == 1
    finally:
        server.stop()
