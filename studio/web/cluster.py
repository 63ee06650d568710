"""GET /studio/v1/cluster: the replicas behind this studio (only when it runs on Ray Serve)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from studio.service.container import Services

STUDIO_PREFIX = "/studio/v1"


def routes(router: APIRouter, services: "Services") -> None:
    status = services.cluster
    if status is None:
        return  # a single-machine studio has no replicas to show

    @router.get(f"{STUDIO_PREFIX}/cluster", tags=["studio"])
    def cluster() -> dict[str, Any]:
        """Jobs each replica answered (by its Serve replica id) and the models it ran, retries after
        a replica died, and the jobs in flight with the replica (id, pid, node) running each."""
        return status.cluster_status()
