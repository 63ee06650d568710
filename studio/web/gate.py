"""The request gate: who may send a body, and how much of it, decided before the app reads a byte.

FastAPI reads (and parses) a request's body before it runs the route's dependencies, so a check of
credentials in a dependency comes after the whole body is in memory; and a body sent with
`Transfer-Encoding: chunked` declares no length to compare with a limit. This pure ASGI middleware
sits in front of every route, Gradio's and ours:

1. a request that needs credentials and lacks them gets its 401 at once: the app never runs, the
   body is never read (the server discards what the client still sends);
2. a declared length over the limit gets its 413 at once;
3. a file route naming a URL (`/gradio_api/file=https://...`) gets a 400: nothing is fetched
   (studio.web.no_fetch);
4. logins are throttled and logout takes a POST (studio.web.logins, studio.web.throttle);
5. otherwise the body's bytes are counted as the app reads them, whatever the framing, and the
   read that crosses the limit ends the request with a 413.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any, Sequence

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio.web.auth import (API_PREFIXES, LOGIN_PATHS, LOGIN_PREFIXES, MAX_BODY_BYTES, AccessPolicy, Credentials,
                             login_user)
from studio.web.logins import client_address, login, logout, too_many
from studio.web.no_fetch import REFUSAL, refused_file_route
from studio.web.throttle import LoginThrottle


class BodyTooLarge(Exception):
    """Raised into the app by `receive` when the body crosses the limit."""


def basic_pair(scope: Scope) -> tuple[str, str] | None:
    """The (user, password) of an HTTP Basic header, else None."""
    header = next((value for name, value in scope.get("headers", []) if name == b"authorization"), b"")
    scheme, _, encoded = header.decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


def known(pair: tuple[str, str], credentials: Sequence[Credentials]) -> bool:
    matched = False
    for known_user, known_password in credentials:  # every pair compared: the time does not tell which matched
        user_ok = secrets.compare_digest(pair[0].encode(), known_user.encode())
        password_ok = secrets.compare_digest(pair[1].encode(), known_password.encode())
        matched = matched or (user_ok and password_ok)
    return matched


def needs_login(policy: AccessPolicy, scope: Scope) -> bool:
    """True when a UI request lacks the login cookie it needs (the API's Basic is checked apart)."""
    path: str = scope.get("path", "")
    if not policy.ui or path in LOGIN_PATHS or path.startswith(LOGIN_PREFIXES):
        return False
    return login_user(scope.get("app"), scope) is None


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number; -1 when it is not one (refused as too large)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


class RequestGate:
    def __init__(self, app: ASGIApp, policy: AccessPolicy, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.policy, self.limit = app, policy, limit
        self.throttle = LoginThrottle()  # this server's failed logins (per address, per user)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(API_PREFIXES) and self.policy.api:
            if not await self.basic_allowed(scope, receive, send):
                return
        elif path in ("/login", "/login/") and scope.get("method") == "POST" and self.policy.ui:
            await login(self.app, self.throttle, scope, receive, send)
            return
        elif path in ("/logout", "/logout/"):
            await logout(self.app, scope, receive, send)
            return
        elif needs_login(self.policy, scope):
            await unauthorized(scope)(scope, receive, send)
            return
        if refused_file_route(scope.get("path", "")):  # a URL where a file is named: never fetched
            await JSONResponse({"detail": REFUSAL}, status_code=400)(scope, receive, send)
            return
        length = declared_length(scope)
        if length is not None and (length < 0 or length > self.limit):
            await too_large(self.limit)(scope, receive, send)
            return
        await CountedBody(self.app, self.limit)(scope, receive, send)

    async def basic_allowed(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """HTTP Basic on the API, with the login back-off; answers 401/429 itself when refused."""
        pair, address = basic_pair(scope), client_address(scope)
        wait = self.throttle.retry_after(address, pair[0] if pair else None) if pair else 0
        if wait:
            await too_many(wait)(scope, receive, send)
            return False
        if pair is not None and known(pair, self.policy.api):
            self.throttle.succeeded(address, pair[0])
            return True
        if pair is not None:
            self.throttle.failed(address, pair[0])
        await unauthorized(scope)(scope, receive, send)
        return False


class CountedBody:
    """One request: the app's reads are counted; crossing the limit answers 413 in the app's place."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit
        self.received = 0
        self.overflowed = self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if self.overflowed:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.overflowed = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            if self.overflowed and not self.started:
                await self._refuse(scope, receive, send)
                return
            if self.overflowed:
                return  # the 413 is out: whatever the app answers after the overflow is dropped
            self.started = self.started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not self.overflowed:
                raise
        if self.overflowed and not self.started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.started = True
        await too_large(self.limit)(scope, receive, send)


def unauthorized(scope: Scope) -> JSONResponse:
    if scope.get("path", "").startswith(API_PREFIXES):
        return JSONResponse({"detail": "Incorrect username or password"}, status_code=401,
                            headers={"WWW-Authenticate": "Basic"})
    return JSONResponse({"detail": "Not authenticated: log in first"}, status_code=401)


def too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"the body is larger than {limit // 2**20} MB"}, status_code=413)


def gate_middleware(policy: AccessPolicy) -> list[Any]:
    """The app's `middleware` argument (FastAPI / Gradio's app_kwargs) with the gate in it."""
    from starlette.middleware import Middleware

    return [Middleware(RequestGate, policy=policy)]
