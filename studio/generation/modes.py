"""Per-mode preparation of pipeline inputs and finishing of outputs (pixels only, no torch).

img2img: the init image resized by the request's resize mode.
outpaint: the canvas extended and its new area masked (studio/generation/outpaint.py), then inpainted.
inpaint: image and mask resized (whole picture) or cropped around the mask plus padding
("only masked"); after sampling, the result is pasted back over the untouched original with
the blurred mask, so pixels beyond mask + blur radius keep their exact bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from studio.generation import imageops, outpaint
from studio.images import to_mask
from studio.request import GenerationRequest, RequestError


@dataclass(frozen=True)
class ModeInputs:
    mode: str  # "txt2img" | "img2img" | "inpaint"
    width: int  # size the pipeline samples at
    height: int
    image: Image.Image | None = None  # what the pipeline encodes (filled when "fill")
    mask: Image.Image | None = None  # mask at sampling size (white = repaint)
    original: Image.Image | None = None  # what the result is pasted onto
    alpha: Image.Image | None = None  # blurred mask at the original's size
    crop: imageops.Box | None = None  # "only masked": where the sample goes in the original
    source: Image.Image | None = None  # the source at sampling size, unfilled (ControlNet's "use source")

    def steps_to_run(self, request: GenerationRequest) -> int:
        """img2img/inpaint run the last floor(strength * steps) steps, as the seeds define it."""
        if self.mode == "txt2img":
            return request.steps
        return int(request.denoising_strength * request.steps)


def prepare(request: GenerationRequest) -> ModeInputs:
    """`request` must be resolved (width/height set)."""
    width, height = int(request.width), int(request.height)
    if request.mode == "txt2img":
        return ModeInputs("txt2img", width, height)
    if request.outpainting:
        # The extended canvas is inpainted "only masked", so the result keeps the canvas's size.
        return _prepare_inpaint(outpaint.as_inpaint(request), width, height)
    if request.mode == "img2img":
        image = imageops.resize_image(request.init_image, width, height, request.resize_mode)
        return ModeInputs("img2img", width, height, image=image, source=image)
    return _prepare_inpaint(request, width, height)


def _prepare_inpaint(request: GenerationRequest, width: int, height: int) -> ModeInputs:
    init = request.init_image.convert("RGB")
    mask = to_mask(request.mask.resize(init.size, Image.Resampling.NEAREST), request.inpainting_mask_invert)
    if mask.getbbox() is None:
        raise RequestError("the mask is empty at the image's size: paint where to repaint (white), or upload a mask")
    if request.inpaint_full_res:
        alpha = imageops.blur_mask(mask, request.mask_blur)
        box = imageops.crop_region(alpha, request.inpaint_full_res_padding, width, height)
        image = init.crop(box.as_tuple()).resize((width, height), Image.Resampling.LANCZOS)
        crop_mask = alpha.crop(box.as_tuple()).resize((width, height), Image.Resampling.LANCZOS)
        return ModeInputs("inpaint", width, height, _fill(request, image, crop_mask), crop_mask, init, alpha, box, image)
    image = imageops.resize_image(init, width, height, request.resize_mode)
    mask = to_mask(imageops.resize_image(mask.convert("RGB"), width, height, request.resize_mode))
    alpha = imageops.blur_mask(mask, request.mask_blur)
    return ModeInputs("inpaint", width, height, _fill(request, image, alpha), alpha, image, alpha, None, image)


def _fill(request: GenerationRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
    return imageops.fill_masked(image, mask) if request.inpainting_fill == 0 else image


def finish(inputs: ModeInputs, generated: Image.Image) -> Image.Image:
    """Stitch an inpainted sample back; other modes are returned as they are."""
    if inputs.mode != "inpaint":
        return generated
    canvas = inputs.original.copy()
    if inputs.crop is not None:
        canvas.paste(generated.resize(inputs.crop.size, Image.Resampling.LANCZOS), inputs.crop.as_tuple()[:2])
    else:
        canvas = generated
    return imageops.paste_back(inputs.original, canvas, inputs.alpha)
