"""Images as requests carry them: base64 in and out, sizes checked from the header before any pixel
is decoded, odd modes normalised, masks thresholded. No torch here: every layer may use it."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageOps

from studio.errors import RequestError

MAX_INPUT_SIDE = 4096
# Inputs are refused before decoding beyond this (a small PNG can expand to gigabytes).
MAX_INPUT_PIXELS = MAX_INPUT_SIDE * MAX_INPUT_SIDE


def encode_image(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decode_image(text: str, name: str = "image") -> Image.Image:
    """A base64 image, with or without a data: prefix (A1111 clients send both). Its size is checked
    from the header before any pixel is decoded, and odd modes (CMYK, 16-bit, float) become RGB/L."""
    image = _open(text, name)
    try:
        image.load()
    except Exception as error:
        raise RequestError(f"{name} is not a decodable base64 image (truncated or damaged)") from error
    return normalise_mode(image).copy()  # a plain Image (not a PngImageFile), so decoded requests compare equal


def peek_size(text: str, name: str = "image") -> tuple[int, int]:
    """A base64 image's width and height read from its header only (no pixel is decoded), so that a
    request's images can be admitted together before any of them is decoded."""
    return _open(text, name).size


def _open(text: str, name: str) -> Image.Image:
    """The image opened lazily (header read, size checked, pixels not decoded)."""
    if not isinstance(text, str):
        raise RequestError(f"{name} must be a base64 image")
    if text.startswith("data:"):
        if "," not in text:
            raise RequestError(f"{name} is a data: URL without a comma before its base64 data")
        text = text.split(",", 1)[1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(text.strip(), validate=False)))
    except Image.DecompressionBombError:  # PIL refuses headers over twice its own limit when it opens them
        raise RequestError(f"{name}'s header claims more pixels than PIL opens; at most {MAX_INPUT_PIXELS / 1e6:.1f} "
                           f"million pixels (e.g. {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}) are accepted") from None
    except Exception as error:  # PIL raises several types for undecodable data
        raise RequestError(f"{name} is not a decodable base64 image") from error
    check_input_size(image, name)
    return image


def check_input_size(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width * height > MAX_INPUT_PIXELS:
        raise RequestError(f"{name} is {width}x{height} pixels; at most {MAX_INPUT_PIXELS / 1e6:.1f} million pixels "
                           f"(e.g. {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}) are accepted")


def normalise_mode(image: Image.Image) -> Image.Image:
    """RGB, RGBA, L or LA: what every mode and the saved recipe can hold."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    if image.mode in ("1",):
        return image.convert("L")
    if image.mode.startswith(("I", "F")):
        array = np.asarray(image, dtype=np.float64)
        top = 1.0 if array.size and array.max() <= 1.0 else (255.0 if array.max() <= 255 else 65535.0)
        return Image.fromarray(np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8), "L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV



def to_mask(image: Image.Image, invert: bool = False) -> Image.Image:
    """A mask as mode "L": white (255) = repaint. Transparent pixels of an RGBA mask count as black."""
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        gray = image.convert("L")
        mask = Image.fromarray(np.minimum(np.asarray(gray), np.asarray(alpha)))
    else:
        mask = image.convert("L")
    mask = mask.point(lambda v: 255 if v >= 128 else 0)
    return ImageOps.invert(mask) if invert else mask
