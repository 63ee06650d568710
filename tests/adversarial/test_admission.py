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


def test_the_job_cap_counts_hires_fix_final_size_times_batch_and_count(api, decodes):
    # 512² x hr_scale 4 = 2048² per image, x batch 8 x n_iter 12: 402 MP (it aborted the process).
    body = {"prompt": "x", "steps": 1, "width": 512, "height": 512, "enable_hr": True, "hr_scale": 4,
            "hr_upscaler": "Latent", "batch_size": 8, "n_iter": 12}
    response = api.post("/sdapi/v1/txt2img", json=body)
    assert_handled(response, TALLY)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "96 image(s) of 2048x2048" in detail and "384 megapixels" in detail  # 402,653,184 pixels
    assert "job limit of 64 megapixels" in detail
    resized = {**body, "hr_scale": 2, "hr_resize_x": 2048, "hr_resize_y": 2048, "n_iter": 3}  # 24 x 4 MP
    response = api.post("/sdapi/v1/txt2img", json=resized)
    assert response.status_code == 422 and "job limit of 64 megapixels" in response.json()["detail"]
    assert api.get("/sdapi/v1/progress").status_code == 200


def test_the_job_cap_counts_the_outpainted_canvas(api):
    # 1024² extended by 512 on each side: 2048² per image, x 8 x 3 = 96 MP.
    body = {"prompt": "x", "steps": 1, "init_images": [png_b64(1024)], "batch_size": 8, "n_iter": 3,
            "outpaint_left": 512, "outpaint_right": 512, "outpaint_up": 512, "outpaint_down": 512}
    response = api.post("/sdapi/v1/img2img", json=body)
    assert_handled(response, TALLY)
    assert response.status_code == 422
    assert "2048x2048" in response.json()["detail"] and "job limit of 64 megapixels" in response.json()["detail"]
