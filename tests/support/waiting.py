"""Waiting on a live server from a test: poll until a condition holds, run a request in the background."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import httpx
import pytest


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 180.0) -> Any:
    """The condition's first truthy value; a test failure naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, dict[str, httpx.Response]]:
    """Start `call` on its own thread; its response lands in the dict under "response"."""
    done: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: done.update(response=call()))
    thread.start()
    return thread, done
