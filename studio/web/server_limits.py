"""uvicorn's limits for the studio's server (Gradio starts uvicorn with none of them set).

- TIMEOUT_KEEP_ALIVE: an idle connection is closed after this many seconds, and (our protocol class)
  so is a new connection that has not sent its request line in that time: half-open connections
  cannot pile up;
- LIMIT_CONCURRENCY: beyond this many connections or tasks uvicorn answers 503 at once instead
  of queueing without bound;
- H11_MAX_HEADER_BYTES: a request's headers larger than this are refused (400) while they arrive.
The server speaks HTTP/1.1 through h11 (whose header limit applies), not httptools.
"""
from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import Any, Iterator

from uvicorn.protocols.http.h11_impl import H11Protocol

TIMEOUT_KEEP_ALIVE = 10  # seconds
LIMIT_CONCURRENCY = 512  # connections (each browser tab holds a few: page, queue stream, uploads)
H11_MAX_HEADER_BYTES = 64 * 1024


class HeaderTimeoutH11(H11Protocol):
    """h11, with the keep-alive timeout armed from the connection's start (cancelled by its first bytes)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)


def apply_limits(config: Any) -> None:
    config.http = HeaderTimeoutH11
    config.timeout_keep_alive = TIMEOUT_KEEP_ALIVE
    config.limit_concurrency = LIMIT_CONCURRENCY
    config.h11_max_incomplete_event_size = H11_MAX_HEADER_BYTES


@contextmanager
def server_limits() -> Iterator[None]:
    """Within the block, the uvicorn servers Gradio's launch creates get the limits above."""
    from gradio import http_server

    original = http_server.Server

    class LimitedServer(original):  # type: ignore[misc, valid-type]
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            apply_limits(config)
            super().__init__(config, *args, **kwargs)

    http_server.Server = LimitedServer
    try:
        yield
    finally:
        http_server.Server = original
