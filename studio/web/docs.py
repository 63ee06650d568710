"""/docs and /openapi.json for our routes, served from this machine (no CDN) behind the API's auth.

Swagger UI's script and stylesheet come from the `fastapi-offline` package's static folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse

from studio import __version__

ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}


def swagger_assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def routes(router: APIRouter, api_routes: list[Any]) -> None:
    """`api_routes`: the routes the schema describes (ours, not Gradio's internals)."""

    @router.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return get_openapi(title="Diffusion Studio API", version=__version__, routes=api_routes,
                           description="AUTOMATIC1111-compatible routes (/sdapi/v1), ControlNet and studio routes.")

    @router.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Diffusion Studio API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png")

    @router.get("/docs-assets/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:  # a fixed list: nothing else of the file system is reachable here
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(swagger_assets_dir() / name, media_type=ASSETS[name])
