"""Who a browser tab is, for the studio's queue: its session (what Interrupt, Skip, Cancel and
closing the tab act on) and its login (whose outputs folder and whose turn in the round-robin)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import gradio as gr

if TYPE_CHECKING:
    from studio.service.generation_base import GenerationService

WAITING_HANDLERS = 64  # Gradio handlers that may wait in the studio's queue at once (it refuses beyond its size)


def session_of(http: gr.Request | None) -> str:
    return getattr(http, "session_hash", None) or "local"


def user_of(http: gr.Request | None) -> str | None:
    """The login, else the browser session ("session:<id>"): whose outputs and History these are. The
    service gives a session its own folder only on a hosted demo (elsewhere it uses outputs/)."""
    login = getattr(http, "username", None) or None
    session = getattr(http, "session_hash", None)
    return login or (f"session:{session}" if session else None)


def owner_of(http: gr.Request | None) -> str:
    """A logged-in user's tabs share one turn (as its API calls do); else each tab is its own owner."""
    user = getattr(http, "username", None) or None
    return f"user:{user}" if user else f"session:{session_of(http)}"


def concurrency(generation: "GenerationService") -> int:
    """With the studio's queue every Generate handler starts at once and waits there, showing its
    place; without it (a cluster's jobs run on the replicas), one at a time as before."""
    return WAITING_HANDLERS if generation.queued else 1


def session_action(action: Callable[[str], None], hide: bool = False) -> Callable[..., Any]:
    """A button handler that acts on the calling tab's session (its own jobs: Interrupt, Skip, Cancel)."""
    def handler(http: gr.Request) -> Any:
        action(session_of(http))
        return gr.Button(visible=False) if hide else None

    return handler


def close_handler(generation: "GenerationService") -> Callable[..., None]:
    """demo.unload: the tab closed (or reloaded), so its queued jobs leave and its running job stops."""
    def closed(http: gr.Request) -> None:
        generation.close_session(session_of(http))

    return closed
