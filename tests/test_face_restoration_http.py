"""Face restoration over A1111's HTTP API: /sdapi/v1/face-restorers lists what is in models/,
txt2img's restore_faces and Extras' visibilities run or are refused (422) naming the file to place."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from studio.checkpoints import face_files
from studio.checkpoints.faces import FaceRestorers
from studio.records.infotext import parse_infotext
from studio.settings import Settings
from tests.support import face_models
from tests.support.served import api_client

API = "/sdapi/v1"


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decoded(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, engine) -> Iterator[tuple[TestClient, Path]]:
    root = tmp_path_factory.mktemp("faces_http")
    models = root / "models"
    face_models.write(models, "GFPGAN", face_files.DETECTOR_FILE, face_models.detector_state())
    face_models.write(models, "GFPGAN", "RestoreFormer.pth", face_models.restoreformer_state())
    settings = Settings(models_dir=models, outputs_dir=root / "outputs", extensions_dir=root / "extensions",
                        cache_dir=root / "cache", styles_file=root / "styles.csv")
    shared, engine.faces = engine.faces, FaceRestorers(models, detect_size=face_models.DETECT_SIZE)
    try:
        with api_client(settings, engine) as test_client:
            yield test_client, models
    finally:
        engine.faces = shared


def test_face_restorers_lists_what_is_in_models_in_a1111s_shape(client):
    test_client, models = client
    assert test_client.get(f"{API}/face-restorers").json() == [
        {"name": "RestoreFormer", "cmd_dir": str((models / "GFPGAN").resolve())}]


def test_restore_faces_without_the_files_is_a_422_naming_them(client):
    test_client, models = client
    body = {"prompt": "a face", "steps": 1, "width": 64, "height": 64, "seed": 1, "restore_faces": True}
    response = test_client.post(f"{API}/txt2img", json=body)  # the option's default restorer: CodeFormer
    assert response.status_code == 422
    assert "codeformer-v0.1.0.pth" in response.text and "Codeformer" in response.text
    image = b64(Image.new("RGB", (32, 32), "gray"))
    response = test_client.post(f"{API}/extra-single-image", json={"image": image, "gfpgan_visibility": 0.4})
    assert response.status_code == 422
    assert "gfpgan_visibility" in response.text and "GFPGANv1.4.pth" in response.text
    assert "in models/GFPGAN" in response.json()["detail"]  # the server's own path is not shown to a client


def test_restore_faces_runs_the_named_restorer_and_says_so_in_the_infotext(client):
    test_client, _ = client
    body = {"prompt": "a face", "steps": 1, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}
    plain = test_client.post(f"{API}/txt2img", json=body)
    restored = test_client.post(f"{API}/txt2img", json={
        **body, "restore_faces": True, "override_settings": {"face_restoration_model": "RestoreFormer"}})
    assert plain.status_code == 200 and restored.status_code == 200, restored.text
    info = json.loads(restored.json()["info"])
    assert parse_infotext(info["infotexts"][0])["Face restoration"] == "RestoreFormer"
    assert "Face restoration" not in json.loads(plain.json()["info"])["infotexts"][0]
    before, after = decoded(plain.json()["images"][0]), decoded(restored.json()["images"][0])
    changed = np.any(before != after, axis=-1)
    assert changed.any() and not changed.all()  # the face in the middle, not the corners
    assert not changed[0, 0] and not changed[-1, -1]


def test_extras_visibility_zero_returns_the_picture_unchanged(client):
    test_client, _ = client
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    response = test_client.post(f"{API}/extra-single-image", json={
        "image": b64(image), "upscaling_resize": 1, "gfpgan_visibility": 0, "codeformer_visibility": 0})
    assert response.status_code == 200, response.text
    assert np.array_equal(decoded(response.json()["image"]), np.asarray(image))


def test_options_hold_the_face_restoration_model_and_weight(client):
    test_client, _ = client
    options = test_client.get(f"{API}/options").json()
    assert options["face_restoration_model"] == "CodeFormer" and options["code_former_weight"] == 0.5
    assert test_client.post(f"{API}/options", json={"face_restoration_model": "Nope"}).status_code == 422
    assert test_client.post(f"{API}/options", json={"face_restoration_model": "GFPGAN",
                                                     "code_former_weight": 0.3}).status_code == 200
    assert test_client.get(f"{API}/options").json()["face_restoration_model"] == "GFPGAN"
