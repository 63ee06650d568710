"""A studio served in this process for HTTP tests: its services and a client, closed afterwards."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.cli.serve import serve
from studio.service.container import Services, build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api


@contextmanager
def served_studio(settings: Settings, timeout: float = 300) -> Iterator[tuple[Services, httpx.Client]]:
    services, demo, _ = serve(settings, block=False)
    client = httpx.Client(base_url=f"http://127.0.0.1:{settings.port}", timeout=timeout)
    try:
        yield services, client
    finally:
        client.close()
        demo.close()


@contextmanager
def api_client(settings: Settings, engine: object = None) -> Iterator[TestClient]:
    """The HTTP API alone (no Gradio, no port) over a services container, for in-process API tests."""
    app = FastAPI()
    app.include_router(build_api(build_services(settings, engine=engine), AccessPolicy()))
    with TestClient(app) as client:
        yield client
