"""The adversarial suite's shared tools: an in-process API over a real Studio, a network tripwire,
the checks every hostile input must pass, and a per-category tally printed at the end of the run.

Each case asserts: no 5xx, no traceback or object address in the body, a short clear message for a
refusal, the server still answering, no connection beyond loopback, no file outside the allowed dirs.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.service.container import Services, build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api

TALLY_TRIED: Counter = Counter()
TALLY_HANDLED: Counter = Counter()
ADDRESS = re.compile(r"0x[0-9a-f]{8,}")
MARKER = "PAYLOAD-MARKER-7f3a"  # put into hostile inputs; must never show up where it could run or escape


class Tally:
    def __init__(self, category: str) -> None:
        self.category = category

    def tried(self, handled: bool) -> None:
        TALLY_TRIED[self.category] += 1
        TALLY_HANDLED[self.category] += int(handled)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY_TRIED:
        return
    terminalreporter.write_sep("-", "adversarial cases per category (tried / handled)")
    for category in sorted(TALLY_TRIED):
        terminalreporter.write_line(f"{category}: {TALLY_TRIED[category]} / {TALLY_HANDLED[category]}")
    terminalreporter.write_line(f"total: {sum(TALLY_TRIED.values())} / {sum(TALLY_HANDLED.values())}")


def is_loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return isinstance(address, (str, bytes))  # unix sockets


@pytest.fixture(autouse=True)
def network_tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any connection beyond loopback fails the test (a PNG or a request must never reach the network)."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if not is_loopback(address):
            attempts.append(address)
            raise OSError(f"network access blocked by the test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    assert not attempts, f"network was attempted: {attempts}"


def assert_handled(response: Any, tally: Tally | None = None) -> None:
    """A hostile input got a clean answer: no 5xx, a one-line reason for a refusal, nothing internal."""
    body = response.text
    ok = (response.status_code < 500 and "Traceback" not in body and not ADDRESS.search(body)
          and MARKER not in response.headers.get("location", ""))
    if ok and 400 <= response.status_code < 500 and response.status_code not in (401, 404, 405, 413):
        detail = response.json().get("detail")
        ok = isinstance(detail, str) and 0 < len(detail) <= 2100
    if tally is not None:
        tally.tried(ok)
    assert ok, f"{response.status_code}: {body[:500]}"


def files_outside(root: Path, allowed: list[Path]) -> list[Path]:
    """Files under `root` that are not inside any allowed folder."""
    allowed = [a.resolve() for a in allowed]
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not any(a == path.resolve() or a in path.resolve().parents for a in allowed):
            found.append(path)
    return found


@pytest.fixture(scope="session")
def adversary_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adversary")


@pytest.fixture(scope="session")
def adversary_studio(adversary_root: Path) -> Services:
    settings = Settings(models_dir=adversary_root / "models", outputs_dir=adversary_root / "outputs",
                        extensions_dir=adversary_root / "extensions", cache_dir=adversary_root / "cache")
    studio = build_services(settings)
    studio.models.current()
    return studio


@pytest.fixture(scope="session")
def api(adversary_studio: Services) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(build_api(adversary_studio, AccessPolicy()))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
