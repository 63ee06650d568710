"""Networks beside the model: LoRA, embedding and VAE listings in A1111's shapes, and the VAE of
requests that name none (A1111's sd_vae option)."""
from __future__ import annotations

from typing import Any

from studio.networks import listing
from studio.networks.manager import NetworkManager
from studio.service.models import ModelService
from studio.settings import Settings


class NetworkService:
    def __init__(self, settings: Settings, networks: NetworkManager, models: ModelService) -> None:
        self.settings = settings
        self.networks = networks
        self.models = models

    def lora_items(self) -> list[dict[str, Any]]:
        return listing.lora_items(self.networks.lora_index)

    def refresh_loras(self) -> None:
        """A1111's refresh-loras: the folder is read again, every file's metadata with it."""
        self.networks.lora_index.refresh()
        self.lora_items()

    def lora_names(self) -> list[str]:
        return [item["name"] for item in self.lora_items()]

    def embedding_items(self) -> dict[str, dict[str, Any]]:
        """{"loaded": ..., "skipped": ...}: embeddings that fit the loaded model's text encoder."""
        facts = self.models.facts()
        return listing.embedding_items(self.settings, facts.text_width if facts is not None else None)

    def embedding_names(self) -> list[str]:
        return sorted(self.embedding_items()["loaded"])

    def vae_items(self) -> list[dict[str, str]]:
        return listing.vae_items(self.settings)

    def hypernetwork_items(self) -> list[dict[str, str]]:
        return listing.hypernetwork_items(self.settings)

    def vae_names(self) -> list[str]:
        return self.networks.vae_names()

    def selected_vae(self) -> str:
        return self.networks.selected_vae

    def select_vae(self, name: str) -> str:
        """The VAE of requests that name none; loaded with the next generation."""
        return self.networks.select_vae(name)
