"""Edge-style control images: Canny edges and scribbles, as the studio and the training data make them."""

from __future__ import annotations

import numpy as np
from PIL import Image


def canny(image: Image.Image, low: int = 100, high: int = 200) -> Image.Image:
    """White-on-black binary Canny edges (RGB, same size as ``image``).

    Like controlnet_aux's CannyDetector, cv2.Canny runs on the RGB array (per-channel gradients),
    so edges between colours of equal brightness are found too.
    """
    import cv2  # on first use: `python -m studio generate` without ControlNet never needs OpenCV

    edges = cv2.Canny(np.ascontiguousarray(np.asarray(image.convert("RGB"))), low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


def scribble_from_image(image: Image.Image, low: int = 50, high: int = 150) -> Image.Image:
    """A thick white-on-black outline of ``image``: Canny edges dilated to about 3 px (RGB, same size)."""
    edges = np.asarray(canny(image, low, high))[:, :, 0]
    import cv2

    thickness = max(3, round(min(image.size) / 24))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))
    thick = cv2.dilate(edges, kernel)
    return Image.fromarray(np.stack([thick] * 3, axis=-1))
