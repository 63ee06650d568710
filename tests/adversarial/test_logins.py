"""Login back-off and logout by POST on a real `--host <public> --auth` server (issue 22, item 19).

Clients connect from several loopback addresses (127.0.0.3, .4, ...) so that the per-address and the
per-user counts can be told apart."""
from __future__ import annotations

import time
from typing import Iterator

import httpx
import pytest

from studio.web.throttle import ADDRESS_FREE_FAILURES, USER_FREE_FAILURES, LoginThrottle
from tests.adversarial.conftest import Tally
from tests.adversarial.real_server import PASSWORD, USER, RealServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    running = RealServer(tmp_path_factory.mktemp("logins"), extra=["--api-auth", f"{USER}:{PASSWORD}"])
    try:
        yield running.wait_ready()
    finally:
        running.stop()


def client_from(server: RealServer, address: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=120, transport=httpx.HTTPTransport(local_address=address))


def login(client: httpx.Client, user: str, password: str) -> httpx.Response:
    return client.post("/login", data={"username": user, "password": password})


def test_one_address_is_slowed_down_after_its_free_failures(server):
    with client_from(server, "127.0.0.3") as client:
        statuses = [login(client, f"nobody{index}", "wrong").status_code for index in range(ADDRESS_FREE_FAILURES)]
        assert set(statuses) == {400}
        refused = login(client, USER, PASSWORD)  # even the right password waits its turn
        Tally("logins").tried(refused.status_code == 429)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "too many failed logins" in refused.json()["detail"]
        time.sleep(int(refused.headers["Retry-After"]) + 0.5)
        assert login(client, USER, PASSWORD).status_code == 200  # and a success resets the count
    with client_from(server, "127.0.0.9") as other:  # another address is not affected
        assert login(other, USER, PASSWORD).status_code == 200


def test_one_user_is_slowed_down_whatever_the_address(server):
    for index in range(USER_FREE_FAILURES):  # one failure from each address: no address reaches its limit
        with client_from(server, f"127.0.1.{index + 1}") as client:
            assert login(client, "Victim", "wrong").status_code == 400
    with client_from(server, "127.0.2.1") as client:
        refused = login(client, "victim", "wrong")
        Tally("logins").tried(refused.status_code == 429)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert login(client, USER, PASSWORD).status_code == 200  # another user logs in as usual


def test_basic_auth_on_the_api_is_throttled_too(server):
    with client_from(server, "127.0.0.4") as client:
        for _ in range(USER_FREE_FAILURES):
            assert client.get("/sdapi/v1/samplers", auth=("botuser", "wrong")).status_code == 401
        refused = client.get("/sdapi/v1/samplers", auth=("botuser", "wrong"))
        Tally("logins").tried(refused.status_code == 429)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert client.get("/sdapi/v1/samplers", auth=(USER, PASSWORD)).status_code == 200


def test_logout_needs_a_post_from_the_studios_own_pages(server):
    with client_from(server, "127.0.0.5") as client:
        assert login(client, USER, PASSWORD).status_code == 200
        assert client.get("/config").status_code == 200
        assert client.get("/logout").status_code == 405  # a cross-site link or <img> cannot log out
        assert client.get("/config").status_code == 200
        cross_site = client.post("/logout", headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403 and client.get("/config").status_code == 200
        token = dict(client.cookies)
        assert client.post("/logout", headers={"Origin": server.url}).status_code in (200, 302)
        assert client.get("/config", cookies=token).status_code == 401  # the session itself was ended


def test_the_back_off_doubles_and_is_forgotten_after_a_quiet_while():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(USER_FREE_FAILURES):
        assert throttle.retry_after("a", "u") == 0
        throttle.failed("a", "u")
    first = throttle.retry_after("b", "u")
    throttle.failed("b", "u")
    assert first >= 1 and throttle.retry_after("c", "u") >= 2 * first
    now[0] += 2000
    assert throttle.retry_after("c", "u") == 0
