"""GET /studio/v1/cluster: the replicas behind this studio (only when it runs on Ray Serve)."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter

from studio.service.facade import StudioFacade

STUDIO_PREFIX = "/studio/v1"


@runtime_checkable
class ClusterView(Protocol):
    def cluster_status(self) -> dict[str, Any]: ...


def routes(router: APIRouter, studio: StudioFacade) -> None:
    if not isinstance(studio, ClusterView):
        return  # a single-machine studio has no replicas to show

    @router.get(f"{STUDIO_PREFIX}/cluster", tags=["studio"])
    def cluster() -> dict[str, Any]:
        """Jobs each replica answered (by its Serve replica id) and the models it ran, retries after
        a replica died, and the jobs in flight with the replica (id, pid, node) running each."""
        return studio.cluster_status()
