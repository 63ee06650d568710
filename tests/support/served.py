"""A studio served in this process for HTTP tests: its services and a client, closed afterwards."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import httpx

from studio.cli.serve import serve
from studio.service.container import Services
from studio.settings import Settings


@contextmanager
def served_studio(settings: Settings) -> Iterator[tuple[Services, httpx.Client]]:
    services, demo, _ = serve(settings, block=False)
    client = httpx.Client(base_url=f"http://127.0.0.1:{settings.port}", timeout=300)
    try:
        yield services, client
    finally:
        client.close()
        demo.close()
