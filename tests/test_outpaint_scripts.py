"""A1111's outpainting scripts by name over HTTP: "Poor man's outpainting" and "Outpainting mk2" take
A1111's script_args and extend the image on the chosen sides, keeping the original's pixels."""
from __future__ import annotations

import base64
import io
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
