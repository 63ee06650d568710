"""Who can reach what: a census of every route of a public server, without and with credentials.

The server binds 127.0.0.2 (a loopback address the studio still treats as public, since it is not
the default loopback name), so the exposure rules apply while no traffic leaves this machine.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from studio.cli.serve import serve
from studio.settings import Settings
from tests.browser.conftest import free_port

USER, PASSWORD = "artist", "correct horse"
# Reachable without credentials: the login form and what draws it (static assets, icons).
ALLOWED_OPEN = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/robots.txt", "/manifest.json",
                "/pwa_icon", "/pwa_icon/{size}", "/svelte/{path:path}", "/static/{path:path}", "/assets/{path:path}",
                "/gradio_api/startup-events"}  # idempotent: starts the queue once; Gradio calls it at launch


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    """Started the way the issue found the bypass: a public bind with --api-auth and no --auth."""
    root = tmp_path_factory.mktemp("public")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", host="127.0.0.2", port=free_port(), open_browser=False,
                        api_auth=(USER, PASSWORD))
    _, demo, app = serve(settings, block=False)
    try:
        yield app, f"http://127.0.0.2:{settings.port}"
    finally:
        demo.close()


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def route_table(routes, prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route, descending into included routers (FastAPI keeps them nested)."""
    table = []
    for route in routes:
        if hasattr(route, "original_router"):
            table += route_table(route.original_router.routes, prefix + route.include_context.prefix)
            continue
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if path is not None and method != "HEAD":
                table.append((method, prefix + path))
    return table


def test_every_route_needs_credentials_except_the_login_page(public_server):
    app, url = public_server
    table = route_table(app.routes)
    assert ("POST", "/sdapi/v1/txt2img") in table and ("POST", "/gradio_api/queue/join") in table
    open_routes = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for method, path in table:
            status = client.request(method, concrete(path)).status_code
            if status not in (401, 403) and path not in ALLOWED_OPEN:
                open_routes.append(f"{method} {path} -> {status}")
    assert not open_routes, "answered without credentials:\n" + "\n".join(open_routes)
    assert len(table) > 60  # the census covered Gradio's routes and ours


def test_the_bypass_routes_of_the_report_are_closed(public_server):
    _, url = public_server
    with httpx.Client(base_url=url, timeout=120) as client:
        assert client.post("/gradio_api/run/switch_model", json={"data": ["studio-default-64px"]}).status_code in (401, 403)
        assert client.post("/gradio_api/call/run_21", json={"data": []}).status_code in (401, 403)
        assert client.post("/gradio_api/run/read", json={"data": [None]}).status_code in (401, 403)
        assert client.post("/gradio_api/queue/join", json={}).status_code in (401, 403)
        assert client.post("/gradio_api/upload", files={"files": ("a.png", b"x" * 1024)}).status_code in (401, 403)
        assert client.get("/docs").status_code == 401 and client.get("/openapi.json").status_code == 401
        assert client.get("/config").status_code in (401, 403)


def test_the_page_before_login_reveals_nothing_of_the_studio(public_server):
    _, url = public_server
    page = httpx.get(url + "/", timeout=120).text
    listing = httpx.get(url + "/?all_endpoints=true", timeout=120)
    assert listing.status_code == 400 and "studio-default" not in listing.text
    assert httpx.get(url + "/gradio_api/runs?all_endpoints=1", timeout=120).status_code in (400, 401)
    for secret in ("studio-default-64px", "sdapi", "Stable Diffusion checkpoint", "outputs", "extensions", "/tmp"):
        assert secret not in page


def test_the_same_credentials_open_the_ui_and_the_api(public_server):
    _, url = public_server
    with httpx.Client(base_url=url, timeout=120) as client:
        assert client.get("/sdapi/v1/samplers", auth=(USER, PASSWORD)).status_code == 200
        assert client.get("/sdapi/v1/samplers", auth=(USER, "wrong")).status_code == 401
        assert client.get("/docs", auth=(USER, PASSWORD)).status_code == 200
        assert client.post("/login", data={"username": USER, "password": "nope"}).status_code in (400, 401)
        assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        config = client.get("/config")  # the login cookie is kept by the client
        assert config.status_code == 200 and "studio-default-64px" in config.text


class Started(BaseException):
    """Raised past the access check: the server would start (a BaseException, so no handler hides it)."""


@pytest.mark.parametrize("flags", [["--listen"], ["--listen", "--no-api"], ["--host", "127.0.0.2", "--no-api"]])
def test_a_public_bind_without_credentials_refuses_to_start(tmp_path: Path, flags: list[str], monkeypatch, capsys):
    """Through `python -m studio serve`'s own `main` in this process (the exit code is main's return value;
    tests/test_serve_flags.py runs one such refusal as a real process). Getting past the access check
    raises instead of starting a server that would block the test."""
    from studio.cli import serve as serving
    from studio.cli.main import main

    def started(*_: object) -> None:
        raise Started(flags)

    monkeypatch.setattr(serving, "check_user_names", started)  # the first step after the access check
    code = main(["serve", *flags, "--no-browser", "--port", str(free_port()), "--outputs-dir", str(tmp_path)])
    stderr = capsys.readouterr().err
    assert code != 0
    assert "--auth" in stderr and "Traceback" not in stderr
