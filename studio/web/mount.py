"""Assemble the resource modules into one router and put it in front of Gradio's routes."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from fastapi import APIRouter, Depends, FastAPI

from studio.service.folders import named_folders
from studio.service.uploads import UploadQuota
from studio.service.users import user_names
from studio.web import (
    cluster,
    controlnet,
    docs,
    extras,
    generation,
    networks,
    options,
    pnginfo,
    presets,
    progress,
    system,
)
from studio.web.auth import AccessPolicy, RefuseApiListing, RequireLogin, basic_auth_dependency, limit_body_size
from studio.web.errors import studio_route
from studio.web.outputs_guard import OwnOutputsOnly
from studio.web.upload_guard import UploadQuotaGuard

if TYPE_CHECKING:
    from studio.service.container import Services

RESOURCES: tuple[Callable[[APIRouter, "Services"], None], ...] = (
    generation.routes, generation.style_routes, options.routes, options.flag_routes, progress.routes, pnginfo.routes, controlnet.routes,
    networks.routes, extras.routes, cluster.routes, presets.routes, system.routes,
)


def build_api(services: "Services", policy: AccessPolicy) -> APIRouter:
    """Every route of every resource, behind the API credentials when there are any."""
    dependencies = [Depends(limit_body_size)]
    if policy.api:
        dependencies.append(Depends(basic_auth_dependency(policy.api)))
    settings = services.settings
    router = APIRouter(route_class=studio_route(named_folders(settings)), dependencies=dependencies, tags=["sdapi"])
    for add_routes in RESOURCES:
        add_routes(router, services)
    docs.routes(router, list(router.routes))
    return router


def mount_api(app: FastAPI, services: "Services", policy: AccessPolicy) -> None:
    """Add the routes ahead of Gradio's own (its catch-all routes would shadow ours)."""
    before = len(app.router.routes)
    app.include_router(build_api(services, policy))
    added = app.router.routes[before:]
    del app.router.routes[before:]
    guards = sum(isinstance(route, (RefuseApiListing, RequireLogin, OwnOutputsOnly, UploadQuotaGuard))
                 for route in app.router.routes[:4])
    app.router.routes[guards:guards] = added  # after the guards, before Gradio's routes


def mounting_lifespan(services: "Services", policy: AccessPolicy, api: bool) -> Callable[[Any], Any]:
    """A lifespan that mounts our routes while the server starts, before it accepts a connection:
    a client that sees the page answer can call the API at once."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.router.routes.insert(0, RefuseApiListing())
        users = user_names(services.settings)
        if len(users) > 1:  # each user's outputs/<user>/ is served to that user only
            app.router.routes.insert(0, OwnOutputsOnly(app, services.settings.outputs_dir, users))
        settings = services.settings
        if settings.hosted_demo or settings.listens_publicly:  # a shared server: uploads have quotas
            cache = Path(getattr(app.get_blocks(), "GRADIO_CACHE", "")) if hasattr(app, "get_blocks") else Path()
            app.router.routes.insert(0, UploadQuotaGuard(UploadQuota(settings), cache, settings.hosted_demo))
        if policy.ui:
            app.router.routes.insert(0, RequireLogin(app))
        if api:
            mount_api(app, services, policy)
        yield

    return lifespan
