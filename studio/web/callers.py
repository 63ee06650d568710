"""Who is calling an API route: the Basic-auth user when the API has credentials, else the client's
address. Jobs are queued under it, /interrupt and /skip act on its jobs, /progress reports its job."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request


@dataclass(frozen=True)
class Caller:
    owner: str  # queue owner: "user:<name>" or "client:<address>"
    user: str | None  # the checked user name (outputs/<user>/ with several users), None without API auth


def caller(request: Request) -> Caller:
    user = getattr(request.state, "user", None)  # set only after the credentials were checked
    if user:
        return Caller(f"user:{user}", user)
    host = request.client.host if request.client else "unknown"
    return Caller(f"client:{host}", None)
