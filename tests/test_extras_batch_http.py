"""/sdapi/v1/extra-batch-images as A1111 clients send it (imageList of {data, name}) and its limits."""
from __future__ import annotations

import base64
import io
from typing import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from studio.service.container import build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api

API = "/sdapi/v1"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("extras-batch")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", styles_file=root / "styles.csv")
    app = FastAPI()
    app.include_router(build_api(build_services(settings), AccessPolicy()))
    app.state.outputs = settings.outputs_dir
    with TestClient(app) as test_client:
        yield test_client


def b64(image: Image.Image, prefix: str = "") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return prefix + base64.b64encode(buffer.getvalue()).decode()


def test_every_image_comes_back_upscaled_in_order_and_nothing_is_saved(client):
    images = [{"data": b64(Image.new("RGB", (16, 8), "red"), "data:image/png;base64,"), "name": "a.png"},
              {"data": b64(Image.new("RGB", (8, 8), "blue")), "name": "b.png"}]
    response = client.post(f"{API}/extra-batch-images", json={"imageList": images, "upscaler_1": "Nearest",
                                                                "upscaling_resize": 2})
    assert response.status_code == 200, response.text
    out = [Image.open(io.BytesIO(base64.b64decode(item))).convert("RGB") for item in response.json()["images"]]
    assert [image.size for image in out] == [(32, 16), (16, 16)]
    assert out[0].getpixel((0, 0)) == (255, 0, 0) and out[1].getpixel((0, 0)) == (0, 0, 255)
    assert "Postprocess upscaler: Nearest" in response.json()["html_info"]
    assert not list(client.app.state.outputs.rglob("*.png"))  # A1111's API does not save Extras results


@pytest.mark.parametrize(("count", "size", "scale", "message"), [
    (0, 8, 2, "imageList: give at least one image"),
    (101, 1, 2, "imageList: 101 images is more than 100"),
    (5, 1024, 8, "the upscaled image(s) would hold 320 megapixels, more than the job limit of 64"),  # each alone is allowed
    (1, 8, 9, "upscaling_resize must be between 1 and 8"),
])
def test_too_many_too_large_or_no_images_are_a_422(client, count, size, scale, message):
    data = b64(Image.new("RGB", (size, size)))
    body = {"imageList": [{"data": data, "name": f"{i}.png"} for i in range(count)], "upscaler_1": "Nearest",
            "upscaling_resize": scale}
    response = client.post(f"{API}/extra-batch-images", json=body)
    assert response.status_code == 422 and message in response.json()["detail"], response.text


def test_an_undecodable_item_is_named(client):
    body = {"imageList": [{"data": b64(Image.new("RGB", (4, 4))), "name": "ok.png"},
                          {"data": "bm90IGFuIGltYWdl", "name": "bad.png"}]}
    response = client.post(f"{API}/extra-batch-images", json=body)
    assert response.status_code == 422 and "imageList[1] is not a decodable base64 image" in response.json()["detail"]
