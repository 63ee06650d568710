"""With several users, Gradio's file routes serve a file of outputs/<user>/ only to that user.

Gradio serves any file under its allowed paths (our outputs/) to any logged-in session that names
it (/gradio_api/file=<path>). This route sits before Gradio's and answers 403 when the named path is
inside outputs/ but not inside the logged-in user's own folder."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from studio.web.auth import login_user

FILE_PREFIXES = ("/gradio_api/file=", "/gradio_api/file/", "/file=", "/file/")


class OwnOutputsOnly(BaseRoute):
    def __init__(self, app: Any, outputs: Path, users: tuple[str, ...]) -> None:
        self.app, self.outputs, self.users = app, outputs.resolve(), users

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") != "http":
            return Match.NONE, {}
        path: str = scope.get("path", "")
        prefix = next((p for p in FILE_PREFIXES if path.startswith(p)), None)
        if prefix is None:
            return Match.NONE, {}
        return (Match.NONE, {}) if self.allowed(unquote(path[len(prefix):]), scope) else (Match.FULL, {})

    def allowed(self, named: str, scope: Scope) -> bool:
        try:
            target = Path(named).resolve()
            relative = target.relative_to(self.outputs)
        except (ValueError, OSError, RuntimeError):
            return True  # not an output: Gradio's own checks apply (its cache, uploads)
        user = login_user(self.app, scope)
        return bool(relative.parts) and user is not None and relative.parts[0] == user and user in self.users

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": "this file belongs to another user"}, status_code=403)
        await response(scope, receive, send)
