"""Who a browser tab is, for the studio's queue: its session (what Interrupt, Skip, Cancel and
closing the tab act on) and its login (whose outputs folder and whose turn in the round-robin)."""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from studio.ui.context import UiContext

WAITING_HANDLERS = 64  # Gradio handlers that may wait in the studio's queue at once (it refuses beyond its size)


def session_of(http: gr.Request | None) -> str:
    return getattr(http, "session_hash", None) or "local"


def user_of(http: gr.Request | None) -> str | None:
    return getattr(http, "username", None) or None


def owner_of(http: gr.Request | None) -> str:
    """A logged-in user's tabs share one turn (as its API calls do); else each tab is its own owner."""
    user = user_of(http)
    return f"user:{user}" if user else f"session:{session_of(http)}"


def concurrency(ctx: UiContext) -> int:
    """With the studio's queue every Generate handler starts at once and waits there, showing its
    place; without it (a bare UiContext), one at a time as before."""
    return WAITING_HANDLERS if ctx.enqueue is not None else 1


def session_action(action: Callable[[str], None] | None, fallback: Callable[[], None],
                   hide: bool = False) -> Callable[..., Any]:
    """A button handler that stops the calling tab's own jobs (`fallback`: the old global call)."""
    def handler(http: gr.Request) -> Any:
        if action is not None:
            action(session_of(http))
        else:
            fallback()
        return gr.Button(visible=False) if hide else None

    return handler


def close_handler(ctx: UiContext) -> Callable[..., None]:
    """demo.unload: the tab closed (or reloaded), so its queued jobs leave and its running job stops."""
    def closed(http: gr.Request) -> None:
        ctx.close_session(session_of(http))

    return closed
