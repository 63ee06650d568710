"""Model names and model files under attack: titles that escape models/, Hub ids from requests and
PNGs, diffusers folders with hostile configs or pickles inside. All refused, nothing loaded, no network."""
from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR, DEFAULT_MODEL_TITLE
from tests.adversarial.conftest import Tally, assert_handled

API = "/sdapi/v1"
FAST = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 1}
HOSTILE_TITLES = ["../outside_model", "../../outside_model", "/etc", "evil-org/x", "evil-org/x [deadbeef00]",
                  "[deadbeef00]", "models/../../outside_model", "~/outside_model", "C:\\\\windows", "\\\\server\\share",
                  "outside_model\u0000.safetensors", ".", ".."]


def copy_default_model(target: Path) -> None:
    target.mkdir(parents=True)
    for part in ("model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae"):
        source = DEFAULT_MODEL_DIR / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target / part)


@pytest.fixture(scope="module")
def outside_model(adversary_root: Path) -> Path:
    """A loadable model beside models/, where a title must never reach."""
    target = adversary_root / "outside_model"
    if not target.exists():
        copy_default_model(target)
    return target


def current_model(api) -> str:
    return api.get(f"{API}/options").json()["sd_model_checkpoint"]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_titles_never_load(api, outside_model, title):
    tally = Tally("model titles")
    before = current_model(api)
    for response in (api.post(f"{API}/options", json={"sd_model_checkpoint": title}),
                     api.post(f"{API}/txt2img", json={**FAST, "override_settings": {"sd_model_checkpoint": title}})):
        assert_handled(response, tally)
        assert response.status_code == 422
    assert current_model(api) == before


def recipe_png(api, model: str) -> str:
    made = api.post(f"{API}/txt2img", json=FAST).json()["images"][0]
    image = Image.open(io.BytesIO(base64.b64decode(made)))
    recipe = json.loads(image.info["studio"])
    recipe["request"]["model"] = model
    info = PngImagePlugin.PngInfo()
    info.add_itxt("studio", json.dumps(recipe))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("title", ["../outside_model", "evil-org/x", "/etc"])
def test_a_png_naming_a_hostile_model_is_refused_without_network(api, outside_model, title):
    response = api.post("/studio/v1/reproduce", json={"image": recipe_png(api, title)})
    assert_handled(response, Tally("model titles"))
    assert response.status_code == 422 and current_model(api).startswith(DEFAULT_MODEL_TITLE)


def hostile_folder(root: Path, name: str, class_name: object | None = None, pickle: bool = False) -> str:
    target = root / "models" / "Stable-diffusion" / name
    if target.exists():
        return name
    copy_default_model(target)
    if class_name is not None:
        index = json.loads((target / "model_index.json").read_text())
        index["_class_name"] = class_name
        (target / "model_index.json").write_text(json.dumps(index))
    if pickle:
        weights = target / "unet" / "diffusion_pytorch_model.safetensors"
        weights.unlink()
        (target / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    return name


@pytest.mark.parametrize("case", ["class list", "class int", "class unknown", "pickle inside"])
def test_hostile_diffusers_folders_are_refused_and_the_old_model_stays(api, adversary_root, case):
    name = hostile_folder(adversary_root, case.replace(" ", "-"), **{
        "class list": {"class_name": ["StableDiffusionPipeline"]}, "class int": {"class_name": 5},
        "class unknown": {"class_name": "EvilPipeline"}, "pickle inside": {"pickle": True}}[case])
    before = current_model(api)
    response = api.post(f"{API}/options", json={"sd_model_checkpoint": name})
    assert_handled(response, Tally("model files"))
    assert response.status_code == 422 and current_model(api) == before
    assert api.post(f"{API}/txt2img", json=FAST).status_code == 200
