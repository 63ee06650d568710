"""A1111's outpainting scripts by name over HTTP: "Poor man's outpainting" and "Outpainting mk2" take
A1111's script_args and extend the image on the chosen sides, keeping the original's pixels."""
from __future__ import annotations

import base64
import io
import json
from typing import Iterator

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from studio.service.container import build_services
from studio.settings import PROJECT_DIR, Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api

API = "/sdapi/v1"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("outpaint-scripts")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=PROJECT_DIR / "extensions",
                        cache_dir=root / "cache", styles_file=root / "styles.csv")
    app = FastAPI()
    app.include_router(build_api(build_services(settings), AccessPolicy()))
    with TestClient(app) as test_client:
        yield test_client


def scene() -> Image.Image:
    image = Image.new("RGB", (64, 64), (30, 40, 200))
    image.paste((220, 30, 30), (16, 16, 48, 48))
    return image


def body(script: str, args: list) -> dict:
    buffer = io.BytesIO()
    scene().save(buffer, format="PNG")
    return {"prompt": "a red square on a blue background", "steps": 3, "width": 64, "height": 64, "seed": 5,
            "sampler_name": "Euler", "denoising_strength": 0.8, "init_images": [base64.b64encode(buffer.getvalue()).decode()],
            "script_name": script, "script_args": args}


def image_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    (encoded,) = response.json()["images"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize(("script", "args", "size", "inside"), [
    ("Poor man's outpainting", [32, 4, 1, ["left", "right"]], (64, 128), (slice(None), slice(40, 88))),
    ("Outpainting mk2", ["", 16, 8, ["up"], 1.0, 0.05], (80, 64), (slice(32, 80), slice(None))),
])
def test_a1111s_outpainting_scripts_extend_the_chosen_sides(client, script, args, size, inside):
    result = image_of(client.post(f"{API}/img2img", json=body(script, args)))
    assert result.shape[:2] == size
    original = np.asarray(scene(), dtype=np.int16)
    kept = result[inside]  # the original, away from the seam, keeps its pixels
    centre = original[(slice(None), slice(8, 56))] if script.startswith("Poor") else original[16:64]
    assert np.abs(kept - centre).max() == 0
    new_strip = result[:, :32] if script.startswith("Poor") else result[:16]
    assert np.abs(new_strip - original.mean(axis=(0, 1))).mean() < 120  # painted, not left black or white


@pytest.mark.parametrize(("script", "args", "message"), [
    ("Poor man's outpainting", [4, 4, 1, ["left"]], "pixels must be a whole number from 8 to 256"),
    ("Poor man's outpainting", [32, 4, 1, ["sideways"]], "direction must be a list"),
    ("Outpainting mk2", ["", 32, 8, ["up"], 9.0, 0.05], "noise_q must be a number"),
    ("Outpainting mk2", ["", 32, 8, ["up"], 1.0, 0.05, "extra"], "at most 6 script_args"),
])
def test_bad_script_args_are_a_422_naming_them(client, script, args, message):
    response = client.post(f"{API}/img2img", json=body(script, args))
    assert response.status_code == 422 and message in response.json()["detail"], response.text


def grey_scene() -> Image.Image:
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    image.paste((220, 30, 30), (16, 16, 48, 48))
    return image


@pytest.mark.parametrize(("background", "channel"), [("red", 0), ("green", 1), ("blue", 2)])
def test_studio_outpainting_paints_the_prompts_colours_and_records_the_output_size(client, background, channel):
    """Issue 25 item 12: the default start is A1111's "fill" (smooth, no noise), the strip follows the
    prompt (a grey-background image, extended, takes the prompt's background colour), the sampling is
    at the canvas's size (Width/Height are not used), and `Size:` is the file's size."""
    buffer = io.BytesIO()
    grey_scene().save(buffer, format="PNG")
    request = {"prompt": f"a yellow circle on a {background} background", "steps": 6, "seed": 3, "width": 512,
               "height": 512, "denoising_strength": 0.9, "init_images": [base64.b64encode(buffer.getvalue()).decode()],
               "outpaint_right": 32, "outpaint_down": 8, "inpainting_fill": 1}
    response = client.post(f"{API}/img2img", json=request)
    result = image_of(response)
    assert result.shape == (72, 96, 3)
    infotext = json.loads(response.json()["info"])["infotexts"][0]
    assert "Size: 96x72," in infotext and "Outpaint fill: fill" in infotext
    seam = 4  # the default mask blur
    assert np.array_equal(result[:64 - seam, :64 - seam], np.asarray(grey_scene(), dtype=np.int16)[:64 - seam, :64 - seam])
    strip = result[:, 68:].reshape(-1, 3).mean(axis=0)
    others = [strip[c] for c in range(3) if c != channel]
    assert strip[channel] > max(others) + 20, strip  # measured: red (179, 107, 68), green (126, 149, 55), blue (54, 88, 189)
    assert np.abs(np.diff(result[:, 66:], axis=1)).mean() < 10  # smooth, not noise (measured 1-4)
