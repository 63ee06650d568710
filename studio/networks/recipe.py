"""Reproduce: do the LoRA, embedding and VAE files here match the hashes a recipe recorded?"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from studio.networks import discovery, hashes
from studio.networks.discovery import AUTOMATIC
from studio.networks.index import LoraIndex
from studio.request import RequestError
from studio.settings import Settings


def network_warnings(recorded: Mapping[str, Any], settings: Settings) -> list[str]:
    """One warning per network whose file is missing here or has another hash."""
    warnings: list[str] = []
    embeddings = {e.name: e for e in discovery.discover_embeddings(settings)}

    loras = LoraIndex(settings)

    def lora_now(name: str) -> str:
        info = loras.table().find(name, settings)
        return hashes.lora_hash(info.entry.path, settings, dict(info.metadata))

    def embedding_now(name: str) -> str:
        if name not in embeddings:
            raise RequestError(name)
        return hashes.embedding_hash(embeddings[name].path, settings)

    warnings += _compare("LoRA", _names(recorded.get("loras")), lora_now)
    warnings += _compare("embedding", _names(recorded.get("embeddings")), embedding_now)
    vae = recorded.get("vae")
    if isinstance(vae, Mapping) and isinstance(vae.get("name"), str) and vae["name"] != AUTOMATIC:
        warnings += _compare("VAE", _names({vae["name"]: vae.get("hash")}),
                             lambda name: hashes.vae_hash(discovery.find_vae(name, settings).path, settings))
    return warnings


def _names(value: Any) -> dict[str, str]:
    """{name: hash} from an untrusted recipe (a PNG): anything malformed is left out."""
    if not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _compare(what: str, recorded: dict[str, Any], current: Callable[[str], str]) -> list[str]:
    warnings = []
    for name, made_with in recorded.items():
        try:
            now = current(name)
        except (RequestError, OSError):
            warnings.append(f"{what} {name} is not available here")
            continue
        if made_with and now != made_with:
            warnings.append(f"{what} {name} has hash {now} here, the image was made with {made_with}: "
                            "it is not the same file")
    return warnings



