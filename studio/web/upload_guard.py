"""Gradio's upload routes behind the upload quotas (studio/service/uploads.py) on a shared server.

This route sits first: for a POST to an upload path it admits the upload from its declared length
before Gradio reads a byte of the body (413 over a quota or without a declared length), and now and then
sweeps Gradio's upload cache. Anything else passes on to the next route.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from studio.service.uploads import UploadQuota, UploadRefused

UPLOAD_PATHS = ("/gradio_api/upload", "/upload")


def visitor_of(scope: Scope, behind_proxy: bool) -> str:
    """Who uploads: the client address (on a Space, the first X-Forwarded-For: its proxy's client)."""
    if behind_proxy:
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[0].strip()
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class UploadQuotaGuard(BaseRoute):
    def __init__(self, quota: UploadQuota, cache_folder: Path, behind_proxy: bool) -> None:
        self.quota = quota
        self.cache_folder = cache_folder
        self.behind_proxy = behind_proxy

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") not in UPLOAD_PATHS:
            return Match.NONE, {}
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        try:
            self.quota.admit(visitor_of(scope, self.behind_proxy), declared.decode("latin-1") if declared else None)
        except UploadRefused as refused:
            return Match.FULL, {"upload_refusal": (refused.status, str(refused))}
        if self.quota.sweep_due():
            self.quota.sweep(self.cache_folder)
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, message = scope.get("upload_refusal", (413, "upload refused"))
        await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)

    def __repr__(self) -> Any:
        return "UploadQuotaGuard()"
