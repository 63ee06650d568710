"""Extras: upscale finished images (one upscaler, or two blended), fit A1111's "scale to" size, then
restore faces (GFPGAN, then CodeFormer, each blended over the picture by its visibility) as A1111's
postprocessing scripts run in that order."""
from __future__ import annotations

from PIL import Image, ImageOps

from studio.checkpoints.faces import FaceRestorers
from studio.checkpoints.upscalers import Upscalers
from studio.generation.extras_request import MAX_EXTRAS_SIZE, ExtrasRequest
from studio.request import RequestError


def process(image: Image.Image, request: ExtrasRequest, upscalers: Upscalers,
            faces: FaceRestorers | None = None) -> Image.Image:
    """One image through upscaler 1 (and upscaler 2 blended over it by its visibility), then the faces."""
    image = upscale(image.convert("RGB"), request, upscalers)
    if faces is not None:
        image = faces.blend(image, "GFPGAN", request.gfpgan_visibility)
        image = faces.blend(image, "CodeFormer", request.codeformer_visibility, request.codeformer_weight)
    return image


def upscale(image: Image.Image, request: ExtrasRequest, upscalers: Upscalers) -> Image.Image:
    if not request.upscales:
        return image
    width, height = _fit_size(image, request)
    if max(width, height) > MAX_EXTRAS_SIZE:
        raise RequestError(f"the upscaled image would be {width}x{height}; at most {MAX_EXTRAS_SIZE} pixels a side")
    first = upscalers.upscale(image, request.upscaler_1, width, height)
    if request.upscaler_2 != "None" and request.extras_upscaler_2_visibility > 0:
        second = upscalers.upscale(image, request.upscaler_2, width, height)
        first = Image.blend(first, second, request.extras_upscaler_2_visibility)
    target = request.target_size(image)
    if first.size != target:
        first = ImageOps.fit(first, target, Image.Resampling.LANCZOS)
    return first


def _fit_size(image: Image.Image, request: ExtrasRequest) -> tuple[int, int]:
    """The size to upscale to before an exact "scale to" crop (cover the target, keep the aspect)."""
    width, height = request.target_size(image)
    if request.resize_mode == 1 and request.upscaling_crop:
        scale = max(width / image.width, height / image.height)
        return max(width, round(image.width * scale)), max(height, round(image.height * scale))
    return width, height


