"""Few-step generation (issue 26 §2): CFG 1 runs one UNet pass per step, the TCD sampler, presets for
the few-step families recognised from LoRA / checkpoint files, applied over HTTP."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR, DISTILLED_MODEL_TITLE
from studio.records.infotext import parse_infotext
from studio.request import GenerationRequest
from studio.service.few_step import recognise
from studio.service.presets import load_presets
from tests.support.served import api_client


def unet_batches(engine, request: GenerationRequest) -> list[int]:
    """The batch size of every UNet call of one run."""
    unet = engine.models.current().pipe.unet
    batches: list[int] = []
    handle = unet.register_forward_pre_hook(lambda module, args: batches.append(int(args[0].shape[0])))
    try:
        engine.run(request)
    finally:
        handle.remove()
    return batches


@pytest.mark.parametrize("sampler", ["Euler", "LCM"])
def test_cfg_1_skips_the_unconditional_pass(engine, sampler):
    request = GenerationRequest(prompt="a red circle", negative_prompt="blue", sampler_name=sampler, steps=3, seed=1)
    assert unet_batches(engine, request.replace(cfg_scale=7.0)) == [2, 2, 2]  # uncond + cond, batched
    assert unet_batches(engine, request.replace(cfg_scale=1.0)) == [1, 1, 1]  # one pass per step


def test_tcd_makes_the_prompted_colour_in_four_steps(engine):
    result = engine.run(GenerationRequest(prompt="a red circle on a white background", sampler_name="TCD",
                                          steps=4, cfg_scale=1.0, seed=3))
    rgb = np.asarray(result.images[0].image.convert("RGB"), dtype=float)
    centre = rgb[24:40, 24:40].reshape(-1, 3).mean(axis=0)
    assert centre[0] > centre[1] + 40 and centre[0] > centre[2] + 40  # red where the circle is


def test_every_few_step_family_has_a_valid_preset():
    presets = load_presets()
    for name, sampler in (("lcm", "LCM"), ("tcd", "TCD"), ("hyper-sd", "DDIM"), ("turbo", "Euler a"),
                          ("lightning", "Euler")):
        assert presets[name]["sampler_name"] == sampler and presets[name]["cfg_scale"] == 1.0
        assert presets[name]["steps"] <= 8


def _lora(folder: Path, name: str, metadata: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(1, 1)}, str(path), metadata=metadata)
    return path


@pytest.fixture
def few_step_files(settings):
    loras = settings.models_dir / "Lora"
    _lora(loras, "my_style_v3", {"ss_output_name": "lcm-lora-sdv1-5", "ss_network_dim": "64"})
    _lora(loras, "Hyper-SD15-2steps-lora")
    _lora(loras, "tcd_sd15", {"modelspec.title": "Trajectory Consistency Distillation SD1.5"})
    _lora(loras, "plain_style", {"ss_output_name": "watercolour", "ss_training_comment": "a style"})
    _lora(settings.models_dir / "Stable-diffusion", "sd_xl_turbo_1.0_fp16")
    lcm_folder = settings.models_dir / "Stable-diffusion" / "my-lcm"
    shutil.copytree(DEFAULT_MODEL_DIR, lcm_folder, ignore=shutil.ignore_patterns("controlnet-*"))
    index = json.loads((lcm_folder / "model_index.json").read_text())
    (lcm_folder / "model_index.json").write_text(json.dumps({**index, "scheduler": ["diffusers", "LCMScheduler"]}))
    return settings


def test_presets_are_recognised_from_lora_metadata_names_and_checkpoints(few_step_files):
    settings = few_step_files
    found = recognise(settings, "a cat <lora:my_style_v3:1>")
    assert found.preset == "lcm" and "ss_output_name" in found.source and found.values["steps"] == 4
    found = recognise(settings, "a cat <lora:Hyper-SD15-2steps-lora:1>")
    assert found.preset == "hyper-sd" and found.values["steps"] == 2  # the name's step count wins
    assert recognise(settings, "<lora:tcd_sd15:0.8> a cat").preset == "tcd"
    assert recognise(settings, "a cat <lora:plain_style:1>") is None
    assert recognise(settings, "a cat") is None
    assert recognise(settings, "a cat", "sd_xl_turbo_1.0_fp16.safetensors").values["steps"] == 1
    assert recognise(settings, "a cat", "my-lcm").preset == "lcm"  # the folder's LCMScheduler
    assert recognise(settings, "a cat", "studio-default-64px") is None
    assert recognise(settings, "a cat", DISTILLED_MODEL_TITLE).preset == "lcm"  # the shipped 4-step model


@pytest.fixture(scope="module")
def client(engine, shared_settings) -> Iterator[TestClient]:
    with api_client(shared_settings, engine) as test_client:
        yield test_client


def test_presets_listed_and_applied_over_http_explicit_fields_win(client):
    listing = client.get("/studio/v1/presets").json()
    assert {"lcm", "tcd", "hyper-sd", "turbo", "lightning"} <= {p["name"] for p in listing["presets"]}
    body = {"prompt": "a red circle", "seed": 2, "width": 64, "height": 64, "preset": "lcm"}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    params = parse_infotext(json.loads(response.json()["info"])["infotexts"][0])
    assert (params["Sampler"], params["Steps"], params["CFG scale"]) == ("LCM", "4", "1")
    response = client.post("/sdapi/v1/txt2img", json={**body, "steps": 2})
    assert parse_infotext(json.loads(response.json()["info"])["infotexts"][0])["Steps"] == "2"
    unknown = client.post("/sdapi/v1/txt2img", json={**body, "preset": "nope"})
    assert unknown.status_code == 422 and "unknown preset 'nope'" in unknown.text


def test_the_shipped_distilled_model_follows_prompts_in_four_steps_at_cfg_1():
    from diffusers import StableDiffusionPipeline

    from studio.default_model.distill import LCM_DIR
    from studio.default_model.evaluate import generate
    from studio.default_model.reading import classify

    pipe = StableDiffusionPipeline.from_pretrained(LCM_DIR, dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.scheduler).__name__ == "LCMScheduler"
    prompts = {"a red circle on a white background": "red", "a blue square on a yellow background": "blue"}
    images = generate(pipe, list(prompts), "LCM", cfg=1.0, steps=4)
    assert [classify(image).color for image in images] == list(prompts.values())


def test_the_distilled_model_is_offered_and_runs_through_the_engine(engine):
    """The offline few-step path: pick it in the model list, LCM 4 steps at CFG 1, the prompt's colour."""
    from studio.default_model.reading import classify

    request = GenerationRequest(prompt="a red circle on a white background", model=DISTILLED_MODEL_TITLE,
                                sampler_name="LCM", steps=4, cfg_scale=1.0, seed=3)
    try:
        result = engine.run(request)
    finally:
        engine.models.load("studio-default-64px")
    assert result.request.model == DISTILLED_MODEL_TITLE
    assert classify(result.images[0].image).color == "red"
