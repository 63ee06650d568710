"""POST /sdapi/v1/txt2img and /img2img.

A job is converted (images decoded) and run inside one queue slot, so a burst of large requests
waits as compact base64 bodies instead of all decoding at once.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

from fastapi import APIRouter

from studio.facade import StudioFacade
from studio.web.convert import to_request
from studio.web.responses import echo_parameters, encode_saved, generation_info
from studio.web.schemas import GenerationResponse, Img2ImgBody, Txt2ImgBody

PREFIX = "/sdapi/v1"


def routes(router: APIRouter, studio: StudioFacade) -> None:
    slot = threading.Semaphore(studio.parallel_jobs)  # jobs the studio runs at once; decode only when it is ours

    def run(body: Txt2ImgBody) -> dict[str, Any]:
        with slot:
            request = to_request(body, studio)
            started = datetime.now()
            if body.script_name:  # A1111: the named script runs with its positional script_args
                result = studio.run_script(request, body.script_name, list(body.script_args or []))
            else:
                result = studio.submit(request, save=body.save_images)
        images = [encode_saved(saved) for saved in result.images] if body.send_images else []
        info = generation_info(result, studio, started, list(result.request.styles))
        return {"images": images, "parameters": echo_parameters(body), "info": json.dumps(info)}

    @router.post(f"{PREFIX}/txt2img", response_model=GenerationResponse)
    def txt2img(body: Txt2ImgBody) -> dict[str, Any]:
        return run(body)

    @router.post(f"{PREFIX}/img2img", response_model=GenerationResponse)
    def img2img(body: Img2ImgBody) -> dict[str, Any]:
        return run(body)


def style_routes(router: APIRouter, studio: StudioFacade) -> None:
    @router.get(f"{PREFIX}/prompt-styles")
    def prompt_styles() -> list[dict[str, Any]]:
        """The styles of styles.csv in A1111's shape: name, prompt, negative_prompt."""
        return [{"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt}
                for style in studio.prompt_styles().values()]
