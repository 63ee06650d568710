"""PNG metadata: /sdapi/v1/png-info and /studio/v1/reproduce (regenerate one of our PNGs exactly)."""
from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from studio.images import decode_image
from studio.records import infotext, storage
from studio.service.results import JobResult
from studio.web.callers import caller
from studio.web.responses import encode_saved, generation_info
from studio.web.schemas import PngInfoBody, PngInfoResponse, ReproduceBody, ReproduceResponse

if TYPE_CHECKING:
    from studio.service.container import Services

PREFIX = "/sdapi/v1"
STUDIO_PREFIX = "/studio/v1"


def routes(router: APIRouter, services: "Services") -> None:
    @router.post(f"{PREFIX}/png-info", response_model=PngInfoResponse)
    def png_info(body: PngInfoBody) -> dict[str, Any]:
        image = decode_image(body.image.strip(), "image")
        chunks = storage.read_png_text(image)
        text = chunks.pop(storage.PARAMETERS_KEY, "")
        parameters = infotext.parse_infotext(text) if text else {}
        return {"info": text, "items": chunks, "parameters": parameters}

    @router.post(f"{STUDIO_PREFIX}/reproduce", response_model=ReproduceResponse, tags=["studio"])
    def reproduce_image(body: ReproduceBody, http: Request) -> dict[str, Any]:
        """Regenerate the exact image from one of our PNGs (its `studio` recipe chunk)."""
        image = decode_image(body.image.strip(), "image")
        started = datetime.now()
        done = services.generation.reproduce_image(image, owner=caller(http).owner)
        # `info` describes the one image returned; `parameters` is what was run (its whole batch).
        alone = done.request.replace(seed=done.image.seed, batch_size=1, n_iter=1)
        info = generation_info(JobResult(alone, [done.image], interrupted=False), services, started)
        return {"images": [encode_saved(done.image)], "parameters": done.request.to_dict(images=False),
                "info": json.dumps(info), "warnings": done.warnings}
