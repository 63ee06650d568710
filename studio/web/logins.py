"""The login form and logout, as the request gate handles them (see studio.web.throttle):

- POST /login: the small form is read here (at most LOGIN_BODY_BYTES), the user name taken from it,
  the back-off consulted (429 + Retry-After), then Gradio's login runs on the same bytes and its
  answer counts as a success (200) or a failure (4xx);
- /logout: by POST only, from the studio's own pages (a cross-site Origin is refused): a link or an
  image on another site can no longer log a user out. GET /logout answers 405.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio.web.throttle import LoginThrottle

LOGIN_BODY_BYTES = 64 * 1024
MULTIPART_USER = re.compile(rb'name="username"\r\n(?:[^\r\n]*\r\n)*?\r\n([^\r\n]*)\r\n')


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def header(scope: Scope, name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in scope.get("headers", []) if key == name), None)


def too_many(seconds: int) -> JSONResponse:
    return JSONResponse({"detail": f"too many failed logins: try again in {seconds} s"}, status_code=429,
                        headers={"Retry-After": str(seconds)})


def form_user(body: bytes, content_type: str) -> str | None:
    if content_type.startswith("multipart/"):
        found = MULTIPART_USER.search(body)
        return found.group(1).decode("utf-8", "replace") if found else None
    values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get("username")
    return values[0] if values else None


async def read_small_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past `limit` bytes."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def login(app: ASGIApp, throttle: LoginThrottle, scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_small_body(receive, LOGIN_BODY_BYTES)
    if body is None:
        await JSONResponse({"detail": "the login form is too large"}, status_code=413)(scope, receive, send)
        return
    address, user = client_address(scope), form_user(body, header(scope, b"content-type") or "")
    wait = throttle.retry_after(address, user)
    if wait:
        await too_many(wait)(scope, receive, send)
        return
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    status: dict[str, Any] = {}

    async def watch(message: Message) -> None:
        if message["type"] == "http.response.start":
            status["code"] = message["status"]
        await send(message)

    await app(scope, replay, watch)
    code = status.get("code", 500)
    if code < 300:
        throttle.succeeded(address, user)
    elif code in (400, 401, 403):
        throttle.failed(address, user)


def same_origin(scope: Scope) -> bool:
    """No Origin header (not a browser's cross-site request), or one naming this server's host."""
    origin = header(scope, b"origin")
    if origin is None:
        return True
    host = header(scope, b"host") or ""
    return origin.split("://", 1)[-1].rstrip("/") == host


async def logout(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("method") != "POST":
        await JSONResponse({"detail": "log out with POST /logout"}, status_code=405,
                           headers={"Allow": "POST"})(scope, receive, send)
        return
    if not same_origin(scope):
        await JSONResponse({"detail": "logout is accepted from the studio's own pages only"},
                           status_code=403)(scope, receive, send)
        return
    await app({**scope, "method": "GET"}, receive, send)  # Gradio's own logout route (a GET)
