"""Extras routes (A1111's paths and shapes): /sdapi/v1/extra-single-image, /extra-batch-images, /upscalers.

Registered in studio/web/mount.py; reaches the studio only through its Extras service.
"""
from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from PIL import Image
from pydantic import BaseModel, Field

from studio.generation.extras_request import ExtrasRequest
from studio.images import decode_image
from studio.request import MAX_TOTAL_IMAGES, RequestError

if TYPE_CHECKING:
    from studio.service.container import Services

PREFIX = "/sdapi/v1"
MAX_BATCH_OUTPUT_PIXELS = 2**28  # what one /extra-batch-images answer may hold (about 800 MB of RGB)


class ExtrasBaseBody(BaseModel):
    resize_mode: int = Field(default=0, description="0: scale by upscaling_resize, 1: to upscaling_resize_w x _h")
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(default=0, description="refused when > 0: face restoration is not available")
    codeformer_visibility: float = Field(default=0, description="refused when > 0: face restoration is not available")
    codeformer_weight: float = 0
    upscaling_resize: float = 2
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = 0
    upscale_first: bool = False


class ExtrasSingleBody(ExtrasBaseBody):
    image: str = Field(description="base64 image, with or without a data: prefix")


class FileData(BaseModel):
    data: str = Field(description="base64 image")
    name: str = ""


class ExtrasBatchBody(ExtrasBaseBody):
    imageList: list[FileData]


class ExtrasSingleResponse(BaseModel):
    html_info: str
    image: str


class ExtrasBatchResponse(BaseModel):
    html_info: str
    images: list[str]


class UpscalerItem(BaseModel):
    name: str
    model_name: str | None
    model_path: str | None
    model_url: str | None
    scale: float | None


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _fields(body: ExtrasBaseBody) -> dict[str, Any]:
    return body.model_dump(exclude={"image", "imageList", "show_extras_results", "upscale_first"})


def routes(router: APIRouter, services: "Services") -> None:
    extras = services.extras

    @router.post(f"{PREFIX}/extra-single-image", response_model=ExtrasSingleResponse)
    def extra_single_image(body: ExtrasSingleBody) -> dict[str, Any]:
        image = decode_image(body.image.strip(), "image")
        results, info = extras.run([image], _fields(body), save=False)
        return {"html_info": f"<p>{info}</p>", "image": _png(results[0])}

    @router.post(f"{PREFIX}/extra-batch-images", response_model=ExtrasBatchResponse)
    def extra_batch_images(body: ExtrasBatchBody) -> dict[str, Any]:
        if not body.imageList:
            raise RequestError("imageList: give at least one image")
        if len(body.imageList) > MAX_TOTAL_IMAGES:  # all are decoded and answered at once
            raise RequestError(f"imageList: {len(body.imageList)} images is more than {MAX_TOTAL_IMAGES} in one "
                               "request; send them in smaller batches")
        images = [decode_image(item.data.strip(), f"imageList[{i}]") for i, item in enumerate(body.imageList)]
        sizes = [ExtrasRequest.from_dict(_fields(body)).target_size(image) for image in images]
        if sum(w * h for w, h in sizes) > MAX_BATCH_OUTPUT_PIXELS:
            raise RequestError(f"imageList: the upscaled images would hold {sum(w * h for w, h in sizes):,} pixels, "
                               f"more than {MAX_BATCH_OUTPUT_PIXELS:,} in one answer; send fewer images")
        results, info = extras.run(images, _fields(body), save=False)
        return {"html_info": f"<p>{info}</p>", "images": [_png(image) for image in results]}

    @router.get(f"{PREFIX}/upscalers", response_model=list[UpscalerItem])
    def upscalers() -> list[dict[str, Any]]:
        return [entry.to_api() for entry in extras.upscalers().values() if entry.kind != "latent"]

    @router.get(f"{PREFIX}/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": name} for name, entry in extras.upscalers().items() if entry.kind == "latent"]
