"""Preprocessors that need no detector weights (sd-webui-controlnet's tile_resample, shuffle,
threshold, inpaint_only): small pure functions of the image (and its mask), RGB in, same size out."""
from __future__ import annotations

import numpy as np
from PIL import Image

SHUFFLE_SEED = 0  # the shuffle is a fixed function of the image, so a recipe reproduces its control


def tile_resample(image: Image.Image, rate: float, _: float = 0.0) -> Image.Image:
    """"Down Sampling Rate": the image shrunk by `rate` (area average) and brought back to its size,
    so the tile ControlNet sees only the coarse layout and adds the detail."""
    image = image.convert("RGB")
    if rate < 1.1:  # sd-webui-controlnet: below 1.1 the image is the control as it is
        return image
    small = (max(1, round(image.width / rate)), max(1, round(image.height / rate)))
    return image.resize(small, Image.Resampling.BOX).resize(image.size, Image.Resampling.BICUBIC)


def _noise_disk(height: int, width: int, cell: int, rng: np.random.Generator) -> np.ndarray:
    """controlnet_aux's make_noise_disk: smooth noise in 0..1, one value per pixel."""
    import cv2

    noise = rng.uniform(size=(height // cell + 2, width // cell + 2)).astype(np.float32)
    noise = cv2.resize(noise, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
    noise = noise[cell:cell + height, cell:cell + width]
    noise -= noise.min()
    return noise / max(float(noise.max()), 1e-6)


def shuffle(image: Image.Image, _a: float = 0.0, _b: float = 0.0) -> Image.Image:
    """Content shuffle (controlnet_aux's ContentShuffleDetector): pixels moved along a smooth random
    flow, keeping colours and textures but not the layout. The cell size follows the image as 256 px
    does at sd-webui-controlnet's 512 px processing size."""
    import cv2

    array = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    height, width = array.shape[:2]
    cell = max(8, round(256 * max(height, width) / 512))
    rng = np.random.default_rng(SHUFFLE_SEED)
    flow_x = _noise_disk(height, width, cell, rng) * float(width - 1)
    flow_y = _noise_disk(height, width, cell, rng) * float(height - 1)
    return Image.fromarray(cv2.remap(array, flow_x, flow_y, cv2.INTER_LINEAR))


def threshold(image: Image.Image, level: float, _: float = 0.0) -> Image.Image:
    """"Binarization Threshold": white where the grey level is above `level`, black elsewhere."""
    grey = np.asarray(image.convert("L"))
    binary = np.where(grey > level, 255, 0).astype(np.uint8)
    return Image.fromarray(np.stack([binary] * 3, axis=-1))


def inpaint_only(image: Image.Image, mask: Image.Image | None) -> Image.Image:
    """The image with the area to repaint marked for an inpaint ControlNet: RGBA, alpha 0 where the
    mask is white (the pipeline turns those pixels into -1, the value the model was trained on)."""
    if mask is None:
        raise ValueError("inpaint_only needs a mask: inpaint with a mask, or give the unit a mask "
                         '(API: "image": {"image": ..., "mask": ...})')
    rgba = image.convert("RGB").convert("RGBA")
    keep = np.where(np.asarray(mask.convert("L").resize(image.size)) >= 128, 0, 255).astype(np.uint8)
    rgba.putalpha(Image.fromarray(keep))
    return rgba


def inpaint_condition(image: Image.Image) -> "np.ndarray":
    """An inpaint control image (RGBA as above) as the float array the ControlNet takes: RGB in 0..1,
    -1 where alpha is 0, with a leading batch axis of 1 (1, H, W, 3): what the pipelines take as one image."""
    array = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    rgb = array[..., :3].copy()
    rgb[array[..., 3] < 0.5] = -1.0
    return rgb[None]
