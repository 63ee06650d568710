"""Model titles from HTTP clients -> discovered models. Only what discovery lists can load:
a name from a request never becomes a path or a Hub download by itself."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.checkpoints.catalog import ModelEntry
from studio.request import RequestError

if TYPE_CHECKING:
    from studio.service.container import Services

# The checkpoint titles A1111 shows carry the short hash: "model.safetensors [6ce0161689]".
TITLE_HASH = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]{8,64})\]$")


def split_title(title: str) -> tuple[str, str | None]:
    """("model.safetensors", "6ce0161689") from "model.safetensors [6ce0161689]"."""
    match = TITLE_HASH.match(title.strip())
    return (match.group(1).strip(), match.group(2).lower()) if match else (title.strip(), None)


def resolve_checkpoint(title: Any, services: "Services") -> ModelEntry:
    """A1111 clients send back the sd-models title ("name [hash]"), the bare name or the hash alone."""
    if not isinstance(title, str) or not title.strip():
        raise RequestError("sd_model_checkpoint must be a model title (see /sdapi/v1/sd-models)")
    name, short_hash = split_title(title)
    entries = services.models.entries()
    if name:
        for entry in entries:
            if name in (entry.title, Path(entry.title).stem, Path(entry.title).name):
                return entry
    elif short_hash is not None:
        loaded = services.models.facts()
        if loaded is not None and loaded.hash.startswith(short_hash[:10]):
            return loaded.entry
    available = ", ".join(entry.title for entry in entries)
    raise RequestError(f"model {title[:200]!r} not found: sd_model_checkpoint must name one of the models here "
                       f"(see /sdapi/v1/sd-models): {available}")


def current_title(services: "Services") -> str | None:
    loaded = services.models.facts()
    return f"{loaded.entry.title} [{loaded.hash}]" if loaded is not None else services.settings.model
