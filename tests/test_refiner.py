"""SDXL refiner (issue 15): the base denoises up to "Switch at" (denoising_end), the refiner's
img2img pipeline finishes (denoising_start), latents passed between them. Tiny random SDXL base and
refiner diffusers folders are written by the test (tests/support/tiny_sdxl.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from safetensors import safe_open

from studio.checkpoints.manager import ModelManager
from studio.records.infotext import params_to_request_fields, parse_infotext
from studio.records.reproduce import read_recipe
from studio.request import GenerationRequest, RequestError
from studio.service.container import Services, build_services
from studio.service.extensions.manager import ExtensionManager
from studio.settings import Settings
from studio.web.auth import access_policy
from studio.web.mount import build_api
from tests.support.tiny_sdxl import write_tiny_sdxl_base, write_tiny_sdxl_refiner

BASE = GenerationRequest(prompt="a red circle", negative_prompt="blue", sampler_name="Euler a", steps=4,
                         cfg_scale=5, width=64, height=64, seed=77, model="xl-base")
REFINED = BASE.replace(refiner_checkpoint="xl-refiner", refiner_switch_at=0.5)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> Services:
    root = tmp_path_factory.mktemp("refiner")
    models = root / "models" / "Stable-diffusion"
    write_tiny_sdxl_base(models / "xl-base")
    write_tiny_sdxl_refiner(models / "xl-refiner")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", styles_file=root / "styles.csv")
    return _studio(settings)


def _studio(settings: Settings) -> Services:
    from studio.generation.engine import Engine

    manager = ModelManager(settings)
    return build_services(settings, engine=Engine(manager), extensions=ExtensionManager(settings))


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_refiner_at_half_differs_from_none_and_reproduces_bit_exactly(studio):
    plain = studio.generation.submit(BASE).images[0]
    job = studio.generation.submit(REFINED)
    refined = job.images[0]
    assert refined.image.size == (64, 64)
    assert not np.array_equal(pixels(plain.image), pixels(refined.image))
    loaded = studio.generation.engine.refiners.loaded
    assert loaded is not None and loaded.title == "xl-refiner"

    params = parse_infotext(refined.infotext)
    assert params["Refiner"] == f"xl-refiner [{loaded.hash}]" and params["Refiner switch at"] == "0.5"
    fields = params_to_request_fields(params)
    assert fields["refiner_checkpoint"] == "xl-refiner" and fields["refiner_switch_at"] == 0.5
    assert "Refiner" not in plain.infotext

    recipe = read_recipe(refined.path)
    assert recipe.refiner_hash == loaded.hash and recipe.request.refiner_checkpoint == "xl-refiner"
    again = studio.generation.reproduce_image(refined.path)
    assert again.warnings == []
    assert np.array_equal(pixels(again.image.image), pixels(refined.image))
    assert studio.generation.engine.refiners.loaded is loaded  # kept loaded: no reload between runs

    later = studio.generation.submit(REFINED.replace(refiner_switch_at=0.75)).images[0]
    assert not np.array_equal(pixels(later.image), pixels(refined.image))


def test_the_base_as_its_own_refiner_shares_its_weights(studio):
    kept = studio.generation.engine.refiners.loaded
    job = studio.generation.submit(BASE.replace(refiner_checkpoint="xl-base", refiner_switch_at=0.5))
    assert "Refiner: xl-base [" in job.images[0].infotext
    assert studio.generation.engine.refiners.loaded is kept  # no second copy of the base was loaded


def test_refiner_follows_img2img(studio):
    from PIL import Image

    source = Image.new("RGB", (64, 64), (200, 40, 40))
    request = REFINED.replace(init_image=source, denoising_strength=0.75)
    first = studio.generation.submit(request).images[0]
    plain = studio.generation.submit(request.replace(refiner_checkpoint=None)).images[0]
    assert not np.array_equal(pixels(first.image), pixels(plain.image))
    assert "Refiner: xl-refiner" in first.infotext


def test_a_refiner_of_the_wrong_family_is_refused_clearly(studio, monkeypatch):
    from studio.checkpoints import refiners as refiner

    def no_load(*args):
        raise AssertionError("a model that declares another family is refused without loading it")

    with monkeypatch.context() as patched:
        patched.setattr(refiner, "load_pipeline", no_load)
        with pytest.raises(RequestError, match="studio-default-64px is not an SDXL model"):
            studio.generation.submit(BASE.replace(refiner_checkpoint="studio-default-64px"))
    with pytest.raises(RequestError, match="needs an SDXL base model"):
        studio.generation.submit(REFINED.replace(model="studio-default-64px"))
    with pytest.raises(RequestError, match="refiner_checkpoint: model 'nope' not found"):
        studio.generation.submit(BASE.replace(refiner_checkpoint="nope"))
    with pytest.raises(RequestError, match="refiner_switch_at must be above 0 and below 1"):
        REFINED.replace(refiner_switch_at=1.0).validate()
    with pytest.raises(RequestError, match="enable_hr"):
        REFINED.replace(enable_hr=True).validate()


def test_api_takes_a1111_refiner_fields_and_refuses_a_wrong_family_with_422(studio):
    app = FastAPI()
    app.include_router(build_api(studio, access_policy(studio.settings)))
    body = {"prompt": "a red circle", "steps": 4, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler",
            "override_settings": {"sd_model_checkpoint": "xl-base"}}
    with TestClient(app) as client:
        wrong = client.post("/sdapi/v1/txt2img", json={**body, "refiner_checkpoint": "studio-default-64px"})
        assert wrong.status_code == 422, wrong.text
        assert "refiner_checkpoint" in wrong.text and "not an SDXL model" in wrong.text
        missing = client.post("/sdapi/v1/txt2img", json={**body, "refiner_checkpoint": "nope [0123456789]"})
        assert missing.status_code == 422 and "refiner_checkpoint" in missing.text
        studio.generation.engine.refiners.get("xl-refiner")
        loaded = studio.generation.engine.refiners.loaded
        ok = client.post("/sdapi/v1/txt2img", json={**body, "refiner_checkpoint": f"xl-refiner [{loaded.hash}]",
                                                    "refiner_switch_at": 0.5})
        assert ok.status_code == 200, ok.text
        info = ok.json()["info"]
        assert "Refiner: xl-refiner" in info and "Refiner switch at: 0.5" in info
        none = client.post("/sdapi/v1/txt2img", json={**body, "refiner_checkpoint": "None"})
        assert none.status_code == 200 and "Refiner" not in none.json()["info"]


def test_cli_flags_name_the_refiner(studio, tmp_path):
    from studio.records.pnginfo import read_generation_info
    from tests.test_cli import run_cli

    common = ("generate", "--prompt", "a red circle", "--steps", "4", "--seed", "9", "--width", "64", "--height", "64",
              "--model", "xl-base", "--models-dir", str(studio.settings.models_dir), "--out", str(tmp_path))
    done = run_cli(*common, "--refiner-checkpoint", "xl-refiner", "--refiner-switch-at", "0.5")
    assert done.returncode == 0, done.stderr
    path = Path([line for line in done.stdout.splitlines() if line.endswith(".png")][0])
    params = read_generation_info(path)["params"]
    assert params["Refiner"].startswith("xl-refiner [") and params["Refiner switch at"] == "0.5"
    wrong = run_cli(*common, "--refiner-checkpoint", "studio-default-64px")
    assert wrong.returncode != 0 and "not an SDXL model" in wrong.stderr and "Traceback" not in wrong.stderr


def test_a_refiner_single_file_loads_through_the_bundled_refiner_config(studio, tmp_path, monkeypatch):
    """The original-layout refiner file (as sd_xl_refiner_1.0.safetensors is laid out), reduced."""
    import shutil

    from studio.checkpoints import single_file
    from tests.support.tiny_sdxl import write_tiny_refiner_single_file

    configs = tmp_path / "configs"
    shutil.copytree(single_file.SHIPPED_CONFIGS, configs)
    monkeypatch.setattr(single_file, "SHIPPED_CONFIGS", configs)
    path = write_tiny_refiner_single_file(studio.settings.models_dir / "Stable-diffusion" / "refiner-file.safetensors",
                                          configs)
    try:
        job = studio.generation.submit(BASE.replace(refiner_checkpoint="refiner-file.safetensors", refiner_switch_at=0.5))
        loaded = studio.generation.engine.refiners.loaded
        assert type(loaded.pipe).__name__ == "StableDiffusionXLImg2ImgPipeline" and loaded.pipe.text_encoder is None
        with safe_open(str(path), framework="pt") as handle:
            projection = handle.get_tensor("conditioner.embedders.0.model.text_projection")
            label = handle.get_tensor("model.diffusion_model.label_emb.0.0.weight")
        assert torch.equal(loaded.pipe.text_encoder_2.text_projection.weight, projection.T)
        assert torch.equal(loaded.pipe.unet.add_embedding.linear_1.weight, label)
        assert "Refiner: refiner-file.safetensors [" in job.images[0].infotext
        plain = studio.generation.submit(BASE).images[0]
        assert not np.array_equal(pixels(plain.image), pixels(job.images[0].image))
    finally:
        studio.generation.engine.refiners.unload()
        path.unlink()
