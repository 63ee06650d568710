"""Who may reach the studio: one access policy for Gradio's routes and ours.

Listening beyond loopback (--listen, --host, --share) needs credentials, and then one set of
credentials guards everything: --auth protects the UI and, when --api-auth is not given, the API
too; --api-auth alone protects both as well. On loopback each flag guards what it names.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable, Sequence, Union

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from studio.errors import StudioError
from studio.settings import Settings

Credentials = tuple[str, str]
AuthSetting = Union[Credentials, Sequence[Credentials], None]
MAX_BODY_BYTES = 64 * 2**20  # a 2048x2048 PNG in base64 is well under this


class ApiExposureError(StudioError):
    """The studio would be reachable from the network without credentials."""


@dataclass(frozen=True)
class AccessPolicy:
    ui: tuple[Credentials, ...] = field(default=(), repr=False)
    api: tuple[Credentials, ...] = field(default=(), repr=False)


def credential_list(value: AuthSetting) -> tuple[Credentials, ...]:
    if not value:
        return ()
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return (value,)
    return tuple(value)  # several users


def check_exposure(settings: Settings) -> None:
    """Refuse to serve the network without credentials (A1111 refuses an open API too). A hosted
    demo (a Space) shows its UI to everyone by design, but never an open API."""
    if settings.hosted_demo:
        if settings.api and not settings.api_auth:
            raise ApiExposureError("a hosted demo serves the HTTP API only with credentials: set STUDIO_API_AUTH "
                                   "(a Space secret) or start with --no-api")
        return
    if settings.listens_publicly and not settings.auth and not settings.api_auth:
        raise ApiExposureError(
            "the studio would be open to the network (--listen, --host or --share): set --auth user:password "
            "(it protects the UI and the HTTP API), or --api-auth user:password"
        )


def access_policy(settings: Settings) -> AccessPolicy:
    check_exposure(settings)
    ui, api = credential_list(settings.auth), credential_list(settings.api_auth)
    if settings.listens_publicly and not settings.hosted_demo:
        ui, api = ui or api, api or ui
    return AccessPolicy(ui, api)


def basic_auth_dependency(credentials: Sequence[Credentials]) -> Callable[..., Awaitable[None]]:
    """HTTP Basic against any of the given users (constant-time comparisons)."""
    basic = HTTPBasic(description="the --api-auth (or --auth) user:password", auto_error=False)

    async def check(request: Request, given: HTTPBasicCredentials | None = Depends(basic)) -> None:
        # async: a sync dependency would take a thread of AnyIO's pool on every request, /progress too
        if given is None or not any(_matches(given, user, password) for user, password in credentials):
            raise HTTPException(status_code=401, detail="Incorrect username or password",
                                headers={"WWW-Authenticate": "Basic"})
        request.state.user = given.username  # checked: who the caller is (studio.web.callers)

    return check


def _matches(given: HTTPBasicCredentials, user: str, password: str) -> bool:
    user_ok = secrets.compare_digest(given.username.encode(), user.encode())
    password_ok = secrets.compare_digest(given.password.encode(), password.encode())
    return user_ok and password_ok


async def limit_body_size(request: Request) -> None:  # async: no thread of AnyIO's pool needed
    """413 for bodies over MAX_BODY_BYTES (declared length; chunked bodies are counted by the server)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise HTTPException(status_code=413, detail=f"the body is larger than {MAX_BODY_BYTES // 2**20} MB")


class RefuseApiListing(BaseRoute):
    """Gradio embeds a description of its endpoints in its HTML pages, and `?all_endpoints=true`
    adds the hidden ones, even on the login page served before login. No page of ours needs that
    listing, so any request asking for it is refused before Gradio's routes see it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") == "http" and b"all_endpoints" in scope.get("query_string", b""):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": "the endpoint listing is not served"}, status_code=400)
        await response(scope, receive, send)


# What the login form needs before anyone has logged in: the page, the form, static assets.
LOGIN_PATHS = frozenset({"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/robots.txt",
                         "/manifest.json", "/gradio_api/startup-events"})  # the last: Gradio calls it itself at launch
LOGIN_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")
# Our routes check HTTP Basic themselves (studio.web.mount).
API_PREFIXES = ("/sdapi/", "/studio/", "/controlnet/", "/docs", "/openapi.json")


def login_user(app: Any, scope: Scope) -> str | None:
    """The user name of a valid Gradio login cookie in the request, else None."""
    cookies: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                cookies.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is simply not a login
                return None
    cookie_id = getattr(app, "cookie_id", "")
    tokens = getattr(app, "tokens", {})
    for key in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if key in cookies and cookies[key].value in tokens:
            return tokens[cookies[key].value]
    return None


class RequireLogin(BaseRoute):
    """Gradio guards most of its routes with its login cookie, not all (/gradio_api/token, /user,
    /app_id, /runs, /reset and the stream routes answer anyone). This route sits first and answers
    401 to any request without a valid login, except the login form's own paths and our API."""

    def __init__(self, app: Any) -> None:
        self.app = app  # Gradio's App: its login tokens and cookie names

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") not in ("http", "websocket"):
            return Match.NONE, {}
        path = scope.get("path", "")
        if path in LOGIN_PATHS or path.startswith(LOGIN_PREFIXES) or path.startswith(API_PREFIXES):
            return Match.NONE, {}
        return (Match.NONE, {}) if self._logged_in(scope) else (Match.FULL, {})

    def _logged_in(self, scope: Scope) -> bool:
        return login_user(self.app, scope) is not None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse({"detail": "Not authenticated: log in first"}, status_code=401)
        await response(scope, receive, send)
