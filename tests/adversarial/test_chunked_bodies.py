"""Bodies sent with `Transfer-Encoding: chunked` (no declared length) to a `--host <public> --auth`
server: without credentials they are refused before the server reads them (its memory does not grow
by their size), and past 64 MB they are cut off with a 413, on our routes and Gradio's; the server
keeps serving afterwards (issue 22, item 2)."""
from __future__ import annotations

import base64
import http.client
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest

from tests.adversarial.conftest import Tally
from tests.adversarial.real_server import HOST, PASSWORD, USER, RealServer

MB = 2**20
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    running = RealServer(tmp_path_factory.mktemp("chunked"))
    try:
        yield running.wait_ready()
    finally:
        running.stop()


def chunks(total: int, size: int = MB, first: bytes = b"") -> Iterator[bytes]:
    yield first
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"A" * piece


def send_chunked(server: RealServer, path: str, total: int, headers: dict[str, str] | None = None,
                 first: bytes = b"") -> tuple[int, str]:
    """POST `first`, then `total` bytes in 1 MB chunks (no Content-Length); the answer's status and body."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=600)
    try:
        connection.request("POST", path, body=chunks(total, first=first), encode_chunked=True,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def rss(server: RealServer) -> int:
    return psutil.Process(server.process.pid).memory_info().rss


def still_serving(server: RealServer) -> bool:
    return httpx.get(f"{server.url}/sdapi/v1/samplers", auth=(USER, PASSWORD), timeout=120).status_code == 200


@pytest.mark.parametrize("path", ["/sdapi/v1/png-info", "/gradio_api/upload", "/gradio_api/queue/join"])
def test_a_chunked_body_without_credentials_is_refused_before_it_is_read(server, path):
    before = rss(server)
    status, body = send_chunked(server, path, 150 * MB)
    grown = rss(server) - before
    Tally("body limits").tried(status == 401 and grown < 64 * MB)
    assert status == 401, body[:300]
    assert grown < 64 * MB, f"the server grew by {grown // MB} MB while refusing a 150 MB body"
    assert still_serving(server)


@pytest.mark.parametrize("path", ["/sdapi/v1/png-info", "/sdapi/v1/txt2img"])
def test_a_chunked_body_past_the_limit_gets_413_with_credentials(server, path):
    status, body = send_chunked(server, path, 80 * MB, headers={"Authorization": BASIC})
    Tally("body limits").tried(status == 413)
    assert status == 413 and "64 MB" in body, body[:300]
    assert still_serving(server)


def test_a_chunked_upload_past_the_limit_gets_413_when_logged_in(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    part = (b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")  # a file part that never ends
    status, body = send_chunked(server, "/gradio_api/upload", 80 * MB, first=part,
                                headers={"Cookie": cookie, "Content-Type": "multipart/form-data; boundary=b0undary"})
    Tally("body limits").tried(status == 413)
    assert status == 413, body[:300]
    assert still_serving(server)


def test_a_declared_length_over_the_limit_is_refused_without_reading(server):
    connection = http.client.HTTPConnection(HOST, server.port, timeout=180)
    try:  # only the headers are sent: the answer must not wait for the 100 MB they announce
        connection.putrequest("POST", "/sdapi/v1/png-info")
        connection.putheader("Authorization", BASIC)
        connection.putheader("Content-Length", str(100 * MB))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
    finally:
        connection.close()
    assert still_serving(server)


def test_a_small_chunked_body_with_credentials_still_works(server, tmp_path: Path):
    status, body = send_chunked(server, "/sdapi/v1/png-info", 0, headers={"Authorization": BASIC})
    assert status == 422 or status == 400, body[:300]  # an empty body: a clear refusal from the route itself
    connection = http.client.HTTPConnection(HOST, server.port, timeout=600)
    try:
        connection.request("POST", "/sdapi/v1/png-info", body=iter([b'{"image": ', b'""}']), encode_chunked=True,
                           headers={"Content-Type": "application/json", "Authorization": BASIC})
        response = connection.getresponse()
        assert response.status in (200, 422), response.read()[:300]
    finally:
        connection.close()
