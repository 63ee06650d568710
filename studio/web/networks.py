"""Networks: /sdapi/v1/loras, refresh-loras, embeddings, refresh-embeddings, sd-vae, refresh-vae
in AUTOMATIC1111's shapes. Discovery reads the folders afresh on every call, so the refresh
routes only exist for clients that call them."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from studio.service.facade import StudioFacade

PREFIX = "/sdapi/v1"


def routes(router: APIRouter, studio: StudioFacade) -> None:
    @router.get(f"{PREFIX}/loras")
    def loras() -> list[dict[str, Any]]:
        return studio.lora_items()

    @router.post(f"{PREFIX}/refresh-loras")
    def refresh_loras() -> None:
        studio.lora_items()

    @router.get(f"{PREFIX}/embeddings")
    def embeddings() -> dict[str, dict[str, Any]]:
        return studio.embedding_items()

    @router.post(f"{PREFIX}/refresh-embeddings")
    def refresh_embeddings() -> None:
        studio.embedding_items()

    @router.get(f"{PREFIX}/sd-vae")
    def sd_vae() -> list[dict[str, str]]:
        return studio.vae_items()

    @router.post(f"{PREFIX}/refresh-vae")
    def refresh_vae() -> None:
        studio.vae_items()
