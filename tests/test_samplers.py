import inspect
import json

import gradio as gr
import numpy as np
import pytest
import torch

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR
from studio.checkpoints.single_file import SHIPPED_CONFIGS
from studio.errors import UnknownSamplerError
from studio.generation.kscheduler import KScheduler
from studio.generation.samplers import (
    SAMPLERS,
    SamplerSpec,
    SamplerUnavailableError,
    available_samplers,
    make_scheduler,
    resolve_sampler_name,
)
from studio.request import GenerationRequest, RequestError
from studio.service.container import build_services
from studio.ui.build import build_ui

SD15_CONFIG = json.loads((SHIPPED_CONFIGS / "sd15" / "scheduler" / "scheduler_config.json").read_text())


def default_scheduler_config():
    return json.loads((DEFAULT_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_registered_name_builds_a_fresh_scheduler_from_the_model_config(name):
    config = SD15_CONFIG
    first, second = make_scheduler(name, config), make_scheduler(name, config)
    assert isinstance(first, SAMPLERS[name].scheduler) and first is not second
    for key, value in SAMPLERS[name].kwargs.items():
        assert first.config[key] == value
    assert first.config["prediction_type"] == config.get("prediction_type", "epsilon")
    if SAMPLERS[name].diffusers_reason(default_scheduler_config()):  # on the default model: the k-diffusion one
        assert isinstance(make_scheduler(name, default_scheduler_config()), KScheduler)


def test_aliases_resolve_and_unknown_names_say_what_exists():
    assert resolve_sampler_name("k_dpmpp_2m_ka") == "DPM++ 2M Karras"
    assert resolve_sampler_name("euler a") == "Euler a"
    with pytest.raises(UnknownSamplerError, match="unknown sampler 'Nope'; choose one of: Euler, Euler a"):
        resolve_sampler_name("Nope")


def test_ui_sampler_dropdowns_offer_exactly_the_registry(shared_settings):
    demo = build_ui(build_services(shared_settings))
    dropdowns = [block for block in demo.blocks.values()
                 if isinstance(block, gr.Dropdown) and (block.elem_id or "").endswith("_sampling")]
    assert {d.elem_id for d in dropdowns} >= {"txt2img_sampling", "img2img_sampling", "inpaint_sampling"}
    for dropdown in dropdowns:
        assert [value for _, value in dropdown.choices] == list(SAMPLERS)


# ------------------------------------------------------------------ every sampler at every step count

STEP_COUNTS = (1, 2, 20, 21, 30, 50, 150)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """These tests compare images made in this process only: one thread keeps them fast on a busy CPU."""


@pytest.fixture(scope="module")
def sampler_engine(tmp_path_factory):
    """One engine over the default model and a tiny random epsilon SD 1.5-config model."""
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.settings import Settings
    from tests.support.tiny_models import write_tiny_sd15_folder

    root = tmp_path_factory.mktemp("samplers")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs",
                        extensions_dir=root / "extensions", cache_dir=root / "cache")
    write_tiny_sd15_folder(settings.models_dir / "Stable-diffusion" / "tiny-sd15")
    return Engine(ModelManager(settings))


def _run(engine, model, sampler, steps, **extra):
    request = GenerationRequest(prompt="a red circle on a blue background", sampler_name=sampler, steps=steps,
                                seed=3, width=64, height=64, model=model, **extra)
    pixels = np.asarray(engine.run(request).images[0].image)
    assert pixels.shape == (64, 64, 3)
    return pixels


@pytest.mark.parametrize("config_name", ["default", "sd15"])
def test_every_sampler_steps_through_every_step_count(config_name):
    """Regression: DPM++ 2M (SDE) Karras crashed above 20 steps ("index 31 is out of bounds"):
    Karras sigmas from the zero-SNR sigma_max (4096) round to duplicate leading timesteps, and
    diffusers then started txt2img at the second one. Each scheduler is driven exactly as the
    pipelines drive it (set_timesteps, scale_model_input, step) through every timestep."""
    config = default_scheduler_config() if config_name == "default" else SD15_CONFIG
    for name, spec in SAMPLERS.items():
        if spec.unsupported_reason(config):
            continue
        for steps in STEP_COUNTS:
            scheduler = make_scheduler(name, config)
            if hasattr(scheduler, "noise_sampler_seed"):
                scheduler.noise_sampler_seed = 0
            scheduler.set_timesteps(steps)
            generator = torch.Generator().manual_seed(0)
            sample = torch.randn(1, 4, 8, 8, generator=generator) * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                model_input = scheduler.scale_model_input(sample, t)
                model_output = 0.1 * model_input  # stands in for the UNet: any smooth function works
                sample = scheduler.step(model_output, t, sample, generator=generator).prev_sample \
                    if "generator" in inspect.signature(scheduler.step).parameters else \
                    scheduler.step(model_output, t, sample).prev_sample
            assert torch.isfinite(sample).all(), (name, steps)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_makes_an_image_on_an_epsilon_sd15_model(sampler_engine, sampler):
    for steps in (1, 21):
        _run(sampler_engine, "tiny-sd15", sampler, steps)


def test_a_sampler_without_a_k_diffusion_version_is_listed_with_the_reason():
    """An extension's diffusers-only sampler keeps the refusal mechanism (issue 25: listed with why)."""
    from diffusers import HeunDiscreteScheduler

    from studio.generation.samplers import _refused_on_zero_snr

    registry = {"Euler": SAMPLERS["Euler"], "Heun only": SamplerSpec(HeunDiscreteScheduler, refuse=_refused_on_zero_snr)}
    reasons = available_samplers(default_scheduler_config(), registry)
    assert reasons["Euler"] is None and "zero-terminal-SNR" in reasons["Heun only"]
    with pytest.raises(SamplerUnavailableError, match="not available for this model"):
        make_scheduler("Heun only", default_scheduler_config(), registry)


LISTED_ON_DEFAULT = [name for name, spec in SAMPLERS.items() if not spec.diffusers_reason(default_scheduler_config())]


@pytest.fixture(scope="module")
def default_pipe():
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("sampler", LISTED_ON_DEFAULT)
def test_every_listed_sampler_follows_the_colour_on_the_default_model(default_pipe, sampler):
    """Regression: LMS, PLMS, Heun and DPM2 ignored the zero-terminal-SNR schedule (PLMS painted
    yellow for red). 10 held-out evaluation prompts at 21 steps (also past the old Karras crash)."""
    from studio.default_model.evaluate import TRAIN_SAMPLE, eval_prompts, generators, score_prompts, training_captions

    specs = eval_prompts(10, seen=training_captions(TRAIN_SAMPLE[0], 2000))
    scheduler = make_scheduler(sampler, default_pipe.scheduler.config)
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = list(range(len(specs)))
    pipe = type(default_pipe).from_pipe(default_pipe, scheduler=scheduler)
    images = pipe(prompt=[s.prompt for s in specs], num_inference_steps=21, guidance_scale=7.0, height=64, width=64,
                  generator=generators(len(specs))).images
    scores = score_prompts(specs, images)
    assert scores["color"] >= 0.9, scores


# ------------------------------------------------------------------ schedule types (A1111's "Schedule type")

def test_schedule_type_combines_with_a_sampler_as_the_old_karras_names_did(sampler_engine):
    from studio.generation.samplers import SCHEDULE_TYPES

    old_name = _run(sampler_engine, "tiny-sd15", "DPM++ 2M Karras", 6)
    combined = _run(sampler_engine, "tiny-sd15", "DPM++ 2M", 6, scheduler="karras")  # A1111's API name works too
    assert np.array_equal(old_name, combined)
    plain = _run(sampler_engine, "tiny-sd15", "DPM++ 2M", 6)
    assert not np.array_equal(plain, combined)
    for label in SCHEDULE_TYPES:  # every schedule type runs on a sampler that takes them all
        _run(sampler_engine, "tiny-sd15", "Euler", 3, scheduler=label)


def test_pairs_diffusers_lacks_run_as_k_diffusion_and_a_named_schedule_wins_as_in_a1111(sampler_engine):
    ddim_karras = _run(sampler_engine, "tiny-sd15", "DDIM", 3, scheduler="Karras")
    assert not np.array_equal(ddim_karras, _run(sampler_engine, "tiny-sd15", "DDIM", 3))
    # A1111's get_sampler_and_scheduler: "DPM++ 2M Karras" keeps Karras whatever the field says.
    assert np.array_equal(_run(sampler_engine, "tiny-sd15", "DPM++ 2M Karras", 3, scheduler="Exponential"),
                          _run(sampler_engine, "tiny-sd15", "DPM++ 2M Karras", 3))
    with pytest.raises(RequestError, match="scheduler: unknown schedule type 'Nope'; choose one of: Automatic, Uniform"):
        _run(sampler_engine, "tiny-sd15", "Euler", 3, scheduler="Nope")


def test_infotext_of_a_run_records_the_schedule_type(sampler_engine):
    from studio.records.infotext import request_params

    result = sampler_engine.run(GenerationRequest(prompt="a cat", sampler_name="Euler", scheduler="sgm_uniform",
                                                  steps=2, seed=1, model="tiny-sd15"))
    assert result.request.scheduler == "SGM Uniform"
    assert request_params(result.request, "tiny-sd15", "0")["Schedule type"] == "SGM Uniform"


def test_ui_schedule_type_dropdowns_offer_the_schedule_types(shared_settings):
    from studio.generation.samplers import SCHEDULE_TYPES

    demo = build_ui(build_services(shared_settings))
    dropdowns = [block for block in demo.blocks.values()
                 if isinstance(block, gr.Dropdown) and (block.elem_id or "").endswith("_scheduler")]
    assert {d.elem_id for d in dropdowns} >= {"txt2img_scheduler", "img2img_scheduler", "inpaint_scheduler"}
    for dropdown in dropdowns:
        assert [value for _, value in dropdown.choices] == list(SCHEDULE_TYPES)
        assert dropdown.value == "Automatic"
