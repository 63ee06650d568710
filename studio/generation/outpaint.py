"""Outpainting: extend the canvas by N pixels on any side and mask the new area for inpainting.

The new area starts as A1111's "fill" (the blurred colours of the surroundings, what A1111's
outpainting scripts start from: smooth, no seam), the edge pixels stretched outwards ("stretch",
like A1111's resize-and-fill) or seeded noise around the image's mean colour ("noise"). The
canvas is sampled at its own size (rounded up to 8; A1111's scripts set the size to the canvas too),
so the infotext's `Size:` is the output's. The mask is white over the new
area (plus any inpaint mask the user painted, moved with the image); the inpaint path then
samples around it and pastes the result back with the blurred seam, so the original pixels
farther than mask_blur from the border keep their exact bytes.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from studio.generation.imageops import fill_masked
from studio.images import to_mask
from studio.request import OUTPAINT_FILLS, GenerationRequest


def extend(request: GenerationRequest) -> tuple[Image.Image, Image.Image]:
    """(canvas, mask) for an outpainting request; the mask is "L", white = repaint."""
    image = np.asarray(request.init_image.convert("RGB"))
    pad = ((request.outpaint_up, request.outpaint_down), (request.outpaint_left, request.outpaint_right))
    canvas = np.pad(image, (*pad, (0, 0)), mode="edge")
    new_area = np.pad(np.zeros(image.shape[:2], dtype=bool), pad, mode="constant", constant_values=True)
    if OUTPAINT_FILLS[request.outpaint_fill] == "noise":
        rng = np.random.default_rng(max(request.seed, 0))
        mean = image.reshape(-1, 3).mean(axis=0)
        noise = np.clip(mean + rng.normal(0, 64, canvas.shape), 0, 255).astype(np.uint8)
        canvas = np.where(new_area[..., None], noise, canvas)
    elif OUTPAINT_FILLS[request.outpaint_fill] == "fill":
        filled = fill_masked(Image.fromarray(canvas, mode="RGB"), Image.fromarray(new_area.astype(np.uint8) * 255))
        canvas = np.where(new_area[..., None], np.asarray(filled), canvas)
    mask = new_area
    if request.mask is not None:
        user = to_mask(request.mask.resize(request.init_image.size, Image.Resampling.NEAREST),
                                request.inpainting_mask_invert)
        mask = mask | np.pad(np.asarray(user) > 0, pad, mode="constant", constant_values=False)
    return Image.fromarray(canvas, mode="RGB"), Image.fromarray((mask * 255).astype(np.uint8), mode="L")


def as_inpaint(request: GenerationRequest) -> GenerationRequest:
    """The request as a plain inpaint of the extended canvas (composited at the canvas's own size)."""
    canvas, mask = extend(request)
    return request.replace(init_image=canvas, mask=mask, inpaint_full_res=True, inpainting_mask_invert=False,
                           outpaint_left=0, outpaint_right=0, outpaint_up=0, outpaint_down=0)


def sampling_size(request: GenerationRequest) -> tuple[int, int]:
    """The canvas's size rounded up to a multiple of 8 (the latent grid): what outpainting samples at."""
    width, height = request.outpaint_canvas()
    return -(-width // 8) * 8, -(-height // 8) * 8
