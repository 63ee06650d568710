"""Pixel operations for img2img and inpainting: resize modes, mask blur, crop-to-mask, paste-back.

Semantics follow A1111 (modules/images.py resize_image, masking.py) so artists get what they know.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from studio.request import RESIZE_MODES

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE = range(4)


def resize_image(image: Image.Image, width: int, height: int, mode: int = JUST_RESIZE) -> Image.Image:
    """Fit `image` to width x height the way A1111's resize modes do."""
    image = image.convert("RGB")
    if mode in (JUST_RESIZE, LATENT_UPSCALE):
        return image.resize((width, height), Image.Resampling.LANCZOS)
    if mode == CROP_AND_RESIZE:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if mode == RESIZE_AND_FILL:
        return _resize_and_fill(image, width, height)
    raise ValueError(f"resize_mode must be 0..3 ({', '.join(RESIZE_MODES)}), got {mode}")


def _resize_and_fill(image: Image.Image, width: int, height: int) -> Image.Image:
    """Fit inside, then fill the bands by stretching the image's edge rows/columns (as A1111)."""
    scale = min(width / image.width, height / image.height)
    inner = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    left, top = (width - inner.width) // 2, (height - inner.height) // 2
    canvas.paste(inner, (left, top))
    if top > 0:
        canvas.paste(inner.crop((0, 0, inner.width, 1)).resize((inner.width, top)), (left, 0))
        bottom = height - top - inner.height
        if bottom > 0:
            row = inner.crop((0, inner.height - 1, inner.width, inner.height))
            canvas.paste(row.resize((inner.width, bottom)), (left, top + inner.height))
    if left > 0:
        canvas.paste(inner.crop((0, 0, 1, inner.height)).resize((left, inner.height)), (0, top))
        right = width - left - inner.width
        if right > 0:
            column = inner.crop((inner.width - 1, 0, inner.width, inner.height))
            canvas.paste(column.resize((right, inner.height)), (left + inner.width, top))
    return canvas


def dilate(mask: Image.Image, radius: int) -> Image.Image:
    if radius <= 0:
        return mask
    return mask.filter(ImageFilter.MaxFilter(2 * radius + 1))


def blur_mask(mask: Image.Image, radius: int) -> Image.Image:
    """Soft edge for stitching; clipped to the mask dilated by `radius`, so nothing beyond that
    distance from the mask is ever touched (the untouched-pixels guarantee)."""
    if radius <= 0:
        return mask
    blurred = np.asarray(mask.filter(ImageFilter.GaussianBlur(radius)), dtype=np.uint16)
    limit = np.asarray(dilate(mask, radius), dtype=np.uint16)
    soft = np.maximum(blurred, np.asarray(mask, dtype=np.uint16))  # the mask itself stays fully repainted
    return Image.fromarray(np.minimum(soft, limit).astype(np.uint8), mode="L")


def paste_back(original: Image.Image, generated: Image.Image, alpha: Image.Image) -> Image.Image:
    """Composite generated over original with alpha; alpha 0 keeps the original's exact bytes."""
    original = original.convert("RGB")
    generated = generated.convert("RGB").resize(original.size, Image.Resampling.LANCZOS)
    a = np.asarray(alpha.resize(original.size), dtype=np.uint16)[..., None]
    o = np.asarray(original, dtype=np.uint16)
    g = np.asarray(generated, dtype=np.uint16)
    mixed = (g * a + o * (255 - a) + 127) // 255
    out = np.where(a == 0, o, mixed)
    return Image.fromarray(out.astype(np.uint8), mode="RGB")


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def size(self) -> tuple[int, int]:
        return self.right - self.left, self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom


def crop_region(mask: Image.Image, padding: int, target_width: int, target_height: int) -> Box:
    """The masked area plus padding, grown to the target's aspect ratio, inside the image
    (A1111's get_crop_region + expand_crop_region)."""
    box = mask.getbbox()
    if box is None:
        raise ValueError("the mask is empty: paint or upload a mask with white where to repaint")
    width, height = mask.size
    left, top, right, bottom = box
    left, top = max(0, left - padding), max(0, top - padding)
    right, bottom = min(width, right + padding), min(height, bottom + padding)
    return _expand_to_ratio(Box(left, top, right, bottom), target_width / target_height, width, height)


def _expand_to_ratio(box: Box, ratio: float, width: int, height: int) -> Box:
    w, h = box.size
    if w / h < ratio:
        grow = min(width, round(h * ratio)) - w
        left = max(0, min(box.left - grow // 2, width - (w + grow)))
        return _expand_to_ratio_vertical(Box(left, box.top, left + w + grow, box.bottom), ratio, width, height)
    return _expand_to_ratio_vertical(box, ratio, width, height)


def _expand_to_ratio_vertical(box: Box, ratio: float, width: int, height: int) -> Box:
    w, h = box.size
    if w / h > ratio:
        grow = min(height, round(w / ratio)) - h
        top = max(0, min(box.top - grow // 2, height - (h + grow)))
        return Box(box.left, top, box.right, top + h + grow)
    return box


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's "fill": the masked area gets progressively blurred colours of its surroundings
    (premultiplied-alpha blur of the unmasked pixels, as modules/masking.py fill does)."""
    result = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")
