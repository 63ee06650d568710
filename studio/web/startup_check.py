"""A patient version of Gradio's "is localhost reachable?" check, used only while launching.

Gradio's `launch()` sends HEAD requests to the local URL with 3 s timeouts and gives up at the
first timeout ("When localhost is not accessible, a shareable link must be created"). On a busy
machine (CI running tests beside the server) the server is up but slow to answer; we keep asking
for up to two minutes instead, then report what Gradio would."""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from typing import Iterator

import httpx

REACHABLE = (200, 401, 301, 302, 303, 307, 308)  # Gradio's list: 401/302 when auth is set
PATIENCE_SECONDS = 120


def reachable(url: str, patience: float = PATIENCE_SECONDS) -> bool:
    deadline = time.monotonic() + patience
    while True:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore")
                if httpx.head(url, timeout=15, verify=False).status_code in REACHABLE:
                    return True
        except httpx.TransportError:  # refused, reset or timed out: maybe only busy
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


@contextmanager
def patient_launch_check() -> Iterator[None]:
    """Within the block, Gradio's launch uses `reachable` for its localhost check."""
    from gradio import networking

    original = networking.url_ok
    networking.url_ok = reachable
    try:
        yield
    finally:
        networking.url_ok = original
