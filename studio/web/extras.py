"""Extras routes (A1111's paths and shapes): /sdapi/v1/extra-single-image, /extra-batch-images, /upscalers.

Registered in studio/web/mount.py; reaches the studio only through its Extras service.
"""
from __future__ import annotations

import base64
import io
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from PIL import Image
from pydantic import BaseModel, Field

from studio.images import decode_image, peek_size
from studio.request import MAX_TOTAL_IMAGES, RequestError
from studio.service.admission import admit_extras, admit_inputs
from studio.web.callers import caller

if TYPE_CHECKING:
    from studio.service.container import Services

PREFIX = "/sdapi/v1"


class ExtrasBaseBody(BaseModel):
    resize_mode: int = Field(default=0, description="0: scale by upscaling_resize, 1: to upscaling_resize_w x _h")
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(default=0, description="GFPGAN face restoration blended by this (models/GFPGAN)")
    codeformer_visibility: float = Field(default=0, description="CodeFormer face restoration blended by this "
                                         "(models/Codeformer)")
    codeformer_weight: float = Field(default=0, description="CodeFormer's fidelity: 0 = maximum effect, 1 = minimum")
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
    def extra_single_image(body: ExtrasSingleBody, http: Request) -> dict[str, Any]:
        text = body.image.strip()
        size = peek_size(text, "image")  # admitted from its header, decoded only once admitted
        admit_inputs([("image", size)])
        admit_extras([size], _fields(body))
        results, info = extras.run([lambda: decode_image(text, "image")], _fields(body), save=False,
                                   owner=caller(http).owner)
        return {"html_info": f"<p>{info}</p>", "image": _png(results[0])}

    @router.post(f"{PREFIX}/extra-batch-images", response_model=ExtrasBatchResponse)
    def extra_batch_images(body: ExtrasBatchBody, http: Request) -> dict[str, Any]:
        if not body.imageList:
            raise RequestError("imageList: give at least one image")
        if len(body.imageList) > MAX_TOTAL_IMAGES:
            raise RequestError(f"imageList: {len(body.imageList)} images is more than {MAX_TOTAL_IMAGES} in one "
                               "request; send them in smaller batches")
        # Every header is read and the totals admitted before any image is decoded; then the images
        # are decoded one at a time, each as its turn comes.
        texts = [(f"imageList[{i}]", item.data.strip()) for i, item in enumerate(body.imageList)]
        sizes = [(name, peek_size(text, name)) for name, text in texts]
        admit_inputs(sizes)
        admit_extras([size for _, size in sizes], _fields(body))
        loaders = [partial(decode_image, text, name) for name, text in texts]
        results, info = extras.run(loaders, _fields(body), save=False, owner=caller(http).owner)
        return {"html_info": f"<p>{info}</p>", "images": [_png(image) for image in results]}

    @router.get(f"{PREFIX}/upscalers", response_model=list[UpscalerItem])
    def upscalers() -> list[dict[str, Any]]:
        return [entry.to_api() for entry in extras.upscalers().values() if entry.kind != "latent"]

    @router.get(f"{PREFIX}/latent-upscale-modes")
    def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": name} for name, entry in extras.upscalers().items() if entry.kind == "latent"]
