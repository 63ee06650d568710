"""Networks: /sdapi/v1/loras, refresh-loras, embeddings, refresh-embeddings, sd-vae, refresh-vae
in AUTOMATIC1111's shapes. Discovery reads the folders afresh on every call, so the refresh
routes only exist for clients that call them."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from studio.service.container import Services

PREFIX = "/sdapi/v1"


def routes(router: APIRouter, services: "Services") -> None:
    networks = services.networks

    @router.get(f"{PREFIX}/loras")
    def loras() -> list[dict[str, Any]]:
        return networks.lora_items()

    @router.post(f"{PREFIX}/refresh-loras")
    def refresh_loras() -> None:
        networks.refresh_loras()

    @router.get(f"{PREFIX}/embeddings")
    def embeddings() -> dict[str, dict[str, Any]]:
        return networks.embedding_items()

    @router.post(f"{PREFIX}/refresh-embeddings")
    def refresh_embeddings() -> None:
        networks.embedding_items()

    @router.get(f"{PREFIX}/sd-vae")
    def sd_vae() -> list[dict[str, str]]:
        return networks.vae_items()

    @router.post(f"{PREFIX}/refresh-vae")
    def refresh_vae() -> None:
        networks.vae_items()
