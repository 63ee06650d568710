"""POST /sdapi/v1/txt2img and /img2img.

Each job joins the studio's queue (studio/service/queue.py) under its caller (studio/web/callers.py); the
queue is bounded (--queue-size): beyond it a request is refused at once with 503.
"""
from __future__ import annotations

import contextlib
import json
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends

from studio.web.callers import Caller, caller
from studio.web.convert import to_request
from studio.web.responses import echo_parameters, encode_saved, generation_info
from studio.web.schemas import GenerationResponse, Img2ImgBody, Txt2ImgBody

if TYPE_CHECKING:
    from studio.service.container import Services

PREFIX = "/sdapi/v1"


def routes(router: APIRouter, services: "Services") -> None:
    generation = services.generation
    # The local studio queues jobs itself (studio/service/queue.py: a place, fairness, 503 when full); a
    # cluster runs `parallel_jobs` at once and lets that many through here.
    slot = contextlib.nullcontext() if generation.queued else threading.Semaphore(generation.parallel_jobs)

    def run(body: Txt2ImgBody, who: Caller) -> dict[str, Any]:
        with slot:
            request = to_request(body, services)
            started = datetime.now()
            if body.script_name:  # A1111: the named script runs with its positional script_args
                result = services.extensions.run_script(request, body.script_name, list(body.script_args or []),
                                                        owner=who.owner, user=who.user)
            else:  # queued under the caller (QueueFullError: 503); outputs/<user>/ with several users
                result = generation.submit(request, save=body.save_images, owner=who.owner, user=who.user)
        images = [encode_saved(saved) for saved in result.images] if body.send_images else []
        info = generation_info(result, services, started, list(result.request.styles))
        return {"images": images, "parameters": echo_parameters(body), "info": json.dumps(info)}

    @router.post(f"{PREFIX}/txt2img", response_model=GenerationResponse)
    def txt2img(body: Txt2ImgBody, who: Caller = Depends(caller)) -> dict[str, Any]:
        return run(body, who)

    @router.post(f"{PREFIX}/img2img", response_model=GenerationResponse)
    def img2img(body: Img2ImgBody, who: Caller = Depends(caller)) -> dict[str, Any]:
        return run(body, who)


def style_routes(router: APIRouter, services: "Services") -> None:
    @router.get(f"{PREFIX}/prompt-styles")
    def prompt_styles() -> list[dict[str, Any]]:
        """The styles of styles.csv in A1111's shape: name, prompt, negative_prompt."""
        return [{"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt}
                for style in services.styles.styles().values()]
