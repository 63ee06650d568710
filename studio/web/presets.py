"""GET /studio/v1/presets: the presets of presets/ (fields and description), and which few-step
preset a model or the prompt's LoRAs call for (`?model=...&prompt=...`: studio/service/few_step.py).
POST /sdapi/v1/txt2img and img2img take `"preset": name` (studio/web/convert.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from studio.service.few_step import recognise
from studio.service.presets import load_presets, preset_descriptions

if TYPE_CHECKING:
    from studio.service.container import Services

STUDIO_PREFIX = "/studio/v1"


def routes(router: APIRouter, services: Services) -> None:
    @router.get(f"{STUDIO_PREFIX}/presets")
    def presets(model: str = "", prompt: str = "") -> dict[str, Any]:
        descriptions = preset_descriptions()
        found = recognise(services.settings, prompt[:10000], model or None)
        return {
            "presets": [{"name": name, "description": descriptions.get(name, ""), "fields": fields}
                        for name, fields in load_presets().items()],
            "recognised": None if found is None else {"preset": found.preset, "fields": found.values,
                                                      "source": found.source, "message": found.message()},
        }
