"""Extras, upscalers and hires fix through the A1111-compatible HTTP API (a real server)."""
from __future__ import annotations

from typing import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from studio.cli.serve import serve
from studio.records.infotext import parse_infotext
from studio.settings import Settings
from tests.browser.conftest import free_port
from tests.support.base64_png import b64, decode
from tests.support.esrgan import write_esrgan

API = "/sdapi/v1"




def picture(size: int = 32, colour: tuple[int, int, int] = (200, 40, 40)) -> Image.Image:
    image = Image.new("RGB", (size, size), colour)
    image.paste((20, 20, 220), (size // 4, size // 4, size // 2, size // 2))
    return image


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("extras")
    write_esrgan(root / "models" / "ESRGAN", "tiny-esrgan-4x")
    write_esrgan(root / "models" / "RealESRGAN", "RealESRGAN_x4plus", ".pth", seed=3)  # what A1111 calls R-ESRGAN 4x+
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", port=free_port(), open_browser=False)
    _, demo, _ = serve(settings, block=False)
    client = httpx.Client(base_url=f"http://127.0.0.1:{settings.port}", timeout=300)
    try:
        yield client
    finally:
        client.close()
        demo.close()


def test_upscalers_list_a1111_shape(client):
    items = client.get(f"{API}/upscalers").json()
    names = [item["name"] for item in items]
    assert names[:3] == ["None", "Lanczos", "Nearest"] and "tiny-esrgan-4x" in names
    model = next(item for item in items if item["name"] == "tiny-esrgan-4x")
    assert set(model) == {"name", "model_name", "model_path", "model_url", "scale"} and model["model_name"] == "ESRGAN"
    latent = [item["name"] for item in client.get(f"{API}/latent-upscale-modes").json()]
    assert "Latent (bicubic antialiased)" in latent


def test_a1111s_upscaler_names_find_their_file_or_name_the_folder(client):
    names = [item["name"] for item in client.get(f"{API}/upscalers").json()]
    assert "R-ESRGAN 4x+" in names and "RealESRGAN_x4plus" in names
    assert "R-ESRGAN 4x+ Anime6B" not in names  # its file is not there
    by_name = client.post(f"{API}/extra-single-image", json={
        "image": b64(picture()), "upscaler_1": "R-ESRGAN 4x+", "upscaling_resize": 4})
    by_file = client.post(f"{API}/extra-single-image", json={
        "image": b64(picture()), "upscaler_1": "RealESRGAN_x4plus", "upscaling_resize": 4})
    assert by_name.status_code == 200, by_name.text
    assert decode(by_name.json()["image"]).size == (128, 128)
    assert np.array_equal(np.asarray(decode(by_name.json()["image"])), np.asarray(decode(by_file.json()["image"])))
    missing = client.post(f"{API}/extra-single-image", json={
        "image": b64(picture()), "upscaler_1": "R-ESRGAN 4x+ Anime6B", "upscaling_resize": 2})
    assert missing.status_code == 422
    assert "RealESRGAN_x4plus_anime_6B" in missing.json()["detail"] and "models/RealESRGAN" in missing.json()["detail"]
    ldsr = client.post(f"{API}/txt2img", json={"prompt": "x", "steps": 1, "width": 64, "height": 64,
                                                "enable_hr": True, "hr_upscaler": "LDSR"})
    assert ldsr.status_code == 422 and "LDSR is a latent diffusion upscaler" in ldsr.json()["detail"]


def test_extra_single_image_with_a_model_upscaler(client):
    response = client.post(f"{API}/extra-single-image", json={
        "image": "data:image/png;base64," + b64(picture()), "upscaler_1": "tiny-esrgan-4x", "upscaling_resize": 4})
    assert response.status_code == 200, response.text
    body = response.json()
    assert decode(body["image"]).size == (128, 128)
    assert "Postprocess upscaler: tiny-esrgan-4x" in body["html_info"]


def test_extra_batch_images_blend_two_upscalers_and_scale_to(client):
    images = [{"data": b64(picture()), "name": "a.png"}, {"data": b64(picture(colour=(10, 200, 10))), "name": "b.png"}]
    common = {"imageList": images, "resize_mode": 1, "upscaling_resize_w": 96, "upscaling_resize_h": 64,
              "upscaler_1": "Nearest"}
    nearest = client.post(f"{API}/extra-batch-images", json=common).json()["images"]
    blended = client.post(f"{API}/extra-batch-images", json={**common, "upscaler_2": "Lanczos",
                                                              "extras_upscaler_2_visibility": 0.5})
    assert blended.status_code == 200, blended.text
    blended_images = [decode(text) for text in blended.json()["images"]]
    assert [image.size for image in blended_images] == [(96, 64), (96, 64)]
    a, b = (np.asarray(decode(nearest[0]), dtype=int), np.asarray(blended_images[0], dtype=int))
    assert np.abs(a - b).max() > 0  # upscaler 2 is really blended in


@pytest.mark.parametrize(("route", "body", "message"), [
    ("extra-single-image", {"upscaler_1": "nope"}, "unknown upscaler_1 'nope'"),
    ("extra-single-image", {"upscaler_1": "Latent"}, "unknown upscaler_1 'Latent'"),
    ("extra-single-image", {"gfpgan_visibility": 1}, "gfpgan_visibility: GFPGAN needs its weights: place GFPGANv1.4.pth"),
    ("extra-single-image", {"codeformer_visibility": 0.5}, "codeformer_visibility: CodeFormer needs its weights"),
    ("extra-single-image", {"upscaling_resize": 0.5}, "upscaling_resize must be between 1 and 8"),
    ("txt2img", {"prompt": "x", "steps": 1, "width": 64, "height": 64, "restore_faces": True},
     "restore_faces: CodeFormer needs its weights: place codeformer-v0.1.0.pth"),
])
def test_bad_or_unavailable_requests_are_422(client, route, body, message):
    if route.startswith("extra"):
        body = {"image": b64(picture()), **body}
    response = client.post(f"{API}/{route}", json=body)
    assert response.status_code == 422 and message in response.json()["detail"], response.text


def test_txt2img_enable_hr_maps_a1111_fields(client):
    response = client.post(f"{API}/txt2img", json={
        "prompt": "a red circle", "steps": 2, "seed": 5, "width": 64, "height": 64, "sampler_name": "Euler",
        "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent (bicubic)", "hr_second_pass_steps": 2,
        "denoising_strength": 0.5, "hr_sampler_name": "Use same sampler"})
    assert response.status_code == 200, response.text
    image = decode(response.json()["images"][0])
    assert image.size == (128, 128)
    params = parse_infotext(image.text["parameters"])
    assert params["Hires upscaler"] == "Latent (bicubic)" and params["Hires upscale"] == "2"
    assert params["Denoising strength"] == "0.5"
