"""PNG images as the A1111 API carries them (base64), written and read independently of the studio's codec."""
from __future__ import annotations

import base64
import io

from PIL import Image


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    return image
