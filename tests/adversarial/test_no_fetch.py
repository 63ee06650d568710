"""No request makes the studio resolve a name or open a connection (issue 22, item 5).

The server runs in its own process with a `sitecustomize` that installs an audit hook
(`sys.addaudithook`) writing every `socket.getaddrinfo` and `socket.connect` to a file; every URL
form is then asked of every file route (and the proxy route), logged in. Each answer is a 4xx, and the
audit log never names the probe host or address."""
from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.adversarial.conftest import Tally
from tests.adversarial.real_server import PASSWORD, USER, RealServer

PROBE_HOST, PROBE_ADDRESS = "probe.example.invalid", "203.0.113.7"  # a reserved name and a documentation address
AUDIT = '''
import os, sys
_log = os.environ["STUDIO_SOCKET_AUDIT"]
def _audit(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        with open(_log, "a") as f:
            f.write(f"{event} {args[0] if event == 'socket.getaddrinfo' else args[1]!r}\\n")
sys.addaudithook(_audit)
'''
URLS = [f"https://{PROBE_HOST}/x.png", f"http://{PROBE_ADDRESS}/x.png", f"//{PROBE_HOST}/x.png",
        f"https:%2F%2F{PROBE_HOST}%2Fx.png", f"https%3A%2F%2F{PROBE_HOST}/x.png", f"https%253A%252F%252F{PROBE_HOST}/x",
        f"HTTPS://{PROBE_HOST}/x.png", f"ftp://{PROBE_HOST}/x", f"\\\\{PROBE_HOST}\\x.png", f"%2F%2F{PROBE_ADDRESS}/x"]
ROUTES = ["/gradio_api/file=", "/file=", "/gradio_api/file/", "/file/", "/gradio_api/proxy=", "/proxy="]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealServer, Path]]:
    root = tmp_path_factory.mktemp("nofetch")
    site = root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT)
    log = root / "sockets.log"
    log.touch()
    repo = Path(__file__).resolve().parents[2]
    running = RealServer(root, env={"PYTHONPATH": f"{site}:{repo}", "STUDIO_SOCKET_AUDIT": str(log)})
    try:
        yield running.wait_ready(), log
    finally:
        running.stop()


def test_the_audit_hook_sees_the_servers_sockets(audited):
    server, log = audited
    httpx.get(server.url + "/", timeout=120)
    assert "socket." in log.read_text()  # the hook is live: its silence below means something


def test_no_file_route_resolves_or_connects_for_a_url(audited):
    server, log = audited
    tally = Tally("outbound connections")
    answers = []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        for route, url in itertools.product(ROUTES, URLS):
            status = client.get(route + url).status_code
            answers.append((route + url, status))
            tally.tried(400 <= status < 500)
    seen = [line for line in log.read_text().splitlines() if PROBE_HOST in line or PROBE_ADDRESS in line]
    assert not seen, "the server reached out:\n" + "\n".join(seen[:10])
    wrong = [f"{path} -> {status}" for path, status in answers if not 400 <= status < 500]
    assert not wrong, "\n".join(wrong)


def test_gradio_download_helpers_refuse_after_launch_setup(network_tripwire, monkeypatch):
    """A URL inside a payload (an upload, an example, queue data) reaches Gradio's download helpers:
    after `refuse_url_fetches` they refuse without a lookup."""
    import socket

    from gradio import processing_utils

    from studio.web.no_fetch import UrlFetchRefused, refuse_url_fetches

    lookups = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: lookups.append(args) or [])
    refuse_url_fetches()
    with pytest.raises(UrlFetchRefused):
        asyncio.run(processing_utils.async_ssrf_protected_download(f"https://{PROBE_HOST}/x.png", "/tmp"))
    with pytest.raises(UrlFetchRefused):
        processing_utils.ssrf_protected_download(f"https://{PROBE_HOST}/x.png", "/tmp")
    with pytest.raises(UrlFetchRefused):
        asyncio.run(processing_utils.async_ssrf_protected_get(f"http://{PROBE_ADDRESS}/x"))
    assert not lookups


@pytest.mark.parametrize("named, is_url", [("/tmp/outputs/a.png", False), ("outputs/x:y.png", False),
                                            ("C:/outputs/a.png", False), ("https://h/x", True), ("//h/x", True),
                                            ("%2F%2Fh/x", True), ("https%253A//h", True), ("data:image/png", True)])
def test_url_forms_are_recognised(named, is_url):
    from studio.web.no_fetch import names_a_url

    assert names_a_url(named) is is_url
