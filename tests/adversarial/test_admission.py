"""Issue 22: limits are checked at the one admission point before any work (decode, queue, run)."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image, ImageFile

from tests.adversarial.conftest import Tally, assert_handled

TALLY = Tally("admission")


def png_b64(size: int, colour: tuple[int, int, int] = (40, 90, 160)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG", optimize=False, compress_level=9)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def big_png() -> str:
    return png_b64(4096)  # 4096² of one colour: a few tens of KB that decode to 48 MB


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every PIL decode of an image file during the test (its size)."""
    seen: list[tuple[int, int]] = []
    real = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        seen.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return seen


def test_twenty_compressed_4096_pngs_are_refused_before_any_is_decoded(api, big_png, decodes):
    body = {"imageList": [{"data": big_png, "name": f"{i}.png"} for i in range(20)], "upscaling_resize": 1,
            "upscaler_1": "None"}
    assert len(big_png) * 20 < 4_000_000  # a small body
    response = api.post("/sdapi/v1/extra-batch-images", json=body)
    assert_handled(response, TALLY)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "megapixels" in detail and "64" in detail and "per request" in detail
    assert decodes == []  # refused from the headers alone
    assert api.get("/sdapi/v1/progress").status_code == 200  # and the server keeps serving


def test_a_batch_within_the_limits_is_decoded_one_image_at_a_time(api, decodes):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    body = {"imageList": [{"data": png_b64(32, c), "name": f"{i}.png"} for i, c in enumerate(colours)],
            "upscaling_resize": 2, "upscaler_1": "Nearest"}
    response = api.post("/sdapi/v1/extra-batch-images", json=body)
    assert response.status_code == 200, response.text
    images = [Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB") for text in response.json()["images"]]
    assert [image.size for image in images] == [(64, 64)] * 3
    assert [image.getpixel((10, 10)) for image in images] == colours
    assert decodes[:3] == [(32, 32)] * 3


def test_img2img_images_are_admitted_together_before_decoding(api, big_png, decodes):
    unit = {"enabled": True, "module": "canny", "model": "None", "image": big_png}
    body = {"prompt": "x", "steps": 1, "width": 64, "height": 64, "init_images": [big_png], "mask": big_png,
            "alwayson_scripts": {"controlnet": {"args": [unit, unit, unit]}}}
    response = api.post("/sdapi/v1/img2img", json=body)
    assert_handled(response, TALLY)
    assert response.status_code == 422 and "per request" in response.json()["detail"]
    assert decodes == []
