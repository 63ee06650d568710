"""Core exceptions -> 4xx with {"detail": one line naming the field}; never a 500 for bad input.

Validation errors echo what the client sent only as short, JSON-safe text: a NaN, an Infinity or a
lone surrogate in a body must not break the error response itself.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from studio.errors import StudioError, UnknownSamplerError
from studio.request import RequestError
from studio.service.queue import QueueFullError, QueueShareError

MAX_ECHO = 80  # characters of a rejected value quoted back


def safe_text(value: Any, limit: int = MAX_ECHO) -> str:
    """A short printable form of any value (surrogates escaped, long values cut)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…"


def error_message(items: Any) -> str:
    """FastAPI's / pydantic's error list as one line naming each field and what it got."""
    parts = []
    for item in list(items)[:10]:
        if item.get("type") == "model_attributes_type" and tuple(item.get("loc", ())) == ("body",):
            parts.append("the body must be a JSON object sent with Content-Type: application/json")
            continue
        if item.get("type") == "json_invalid":
            parts.append("the body is not valid JSON")
            continue
        location = ".".join(safe_text(p) for p in item.get("loc", ()) if p != "body") or "body"
        value = item.get("input")
        got = f" (got {safe_text(value)})" if "input" in item and not isinstance(value, (dict, list)) else ""
        parts.append(f"{location}: {safe_text(item.get('msg', 'invalid'), 200)}{got}")
    return "; ".join(parts)


def error_list(items: Any) -> list[dict[str, Any]]:
    """The error items with JSON-safe, short fields (A1111 clients read `detail`; tools read these)."""
    return [{"loc": [safe_text(p) for p in item.get("loc", ())], "msg": safe_text(item.get("msg", ""), 200),
             "type": safe_text(item.get("type", ""))} for item in list(items)[:10]]


def unprocessable(message: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": safe_text(message, 2000)})


class StudioRoute(APIRoute):
    """Turns the core's user errors into 422 with their message, on our routes only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                errors = error.errors()
                return JSONResponse(status_code=422, content={"detail": error_message(errors), "errors": error_list(errors)})
            except QueueShareError as error:  # this caller's share is taken; others are still admitted
                return JSONResponse(status_code=429, content={"detail": str(error)}, headers={"Retry-After": "10"})
            except QueueFullError as error:  # never a hang: the client is told to come back
                return JSONResponse(status_code=503, content={"detail": str(error)}, headers={"Retry-After": "10"})
            except (RequestError, UnknownSamplerError, StudioError) as error:
                return unprocessable(str(error))
            except RecursionError:
                return unprocessable("the body is nested too deeply")

        return route
