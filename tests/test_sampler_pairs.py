"""Every sampler × schedule type pair in the registry runs (A1111 1.10 runs them all) on a tiny real
SD 1.5-config model, with the scheduler the engine builds. Every pair is driven as diffusers' txt2img
and img2img pipelines drive a scheduler (their own timestep, begin-index and step-argument code; CFG's
doubled batch) to finite, non-flat latents; a cover of the pairs (each sampler, each sampler's other
route, each schedule type on both routes) makes real 2-step txt2img and img2img images. On the default
model's zero-terminal-SNR schedule every pair is driven through the scheduler interface, and the
samplers once refused there make images."""
import copy
import inspect
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR
from studio.checkpoints.single_file import SHIPPED_CONFIGS
from studio.generation.kscheduler import KScheduler
from studio.generation.samplers import (
    SAMPLERS,
    SCHEDULE_TYPES,
    SamplerUnavailableError,
    make_scheduler,
    schedule_kwargs,
)
from studio.request import GenerationRequest

PAIRS = [(sampler, schedule) for sampler in SAMPLERS for schedule in SCHEDULE_TYPES]
SD15_CONFIG = json.loads((SHIPPED_CONFIGS / "sd15" / "scheduler" / "scheduler_config.json").read_text())


def _route(sampler: str, schedule: str) -> str:
    """The scheduler a pair runs on with SD 1.5's config: its diffusers class or its k-diffusion sampler."""
    spec = SAMPLERS[sampler]
    try:
        schedule_kwargs(sampler, schedule)
        reason = spec.diffusers_reason(SD15_CONFIG, schedule)
    except SamplerUnavailableError:
        reason = "no diffusers option"
    return spec.scheduler.__name__ if reason is None else f"k-diffusion {spec.k_sampler}"


def _cover() -> list[tuple[str, str]]:
    """Each sampler on Automatic and on its other route (if any); each schedule type on each route it has."""
    chosen: list[tuple[str, str]] = []
    for sampler in SAMPLERS:
        chosen.append((sampler, "Automatic"))
        chosen += [pair for pair in PAIRS if pair[0] == sampler and _route(*pair) != _route(sampler, "Automatic")][:1]
    for schedule in SCHEDULE_TYPES:
        for k_route in (True, False):
            chosen += [pair for pair in PAIRS if pair[1] == schedule and _route(*pair).startswith("k-") == k_route][:1]
    return list(dict.fromkeys(chosen))


COVER = _cover()
FORMERLY_REFUSED = ["DPM++ 2M SDE Karras", "Heun", "LMS", "LMS Karras", "DPM2 Karras", "DPM2 a", "DPM2 a Karras", "PLMS"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Images compared only with themselves: one thread keeps a busy CPU fair."""


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    from diffusers import AutoPipelineForImage2Image, StableDiffusionPipeline

    from tests.support.tiny_models import write_tiny_sd15_folder

    folder = write_tiny_sd15_folder(tmp_path_factory.mktemp("pairs") / "tiny")
    txt2img = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None, dtype=torch.float32,
                                                      requires_safety_checker=False)
    txt2img.set_progress_bar_config(disable=True)
    img2img = AutoPipelineForImage2Image.from_pipe(txt2img)
    img2img.set_progress_bar_config(disable=True)
    with torch.no_grad():
        embeds = txt2img.encode_prompt("a red circle on a blue background", "cpu", 1, True, "")
    return txt2img, img2img, embeds, dict(txt2img.scheduler.config)


def _check(images):
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()
    assert images.std() > 1e-3  # not a flat image


def _drive(scheduler, steps: int, strength: float | None = None, seed: int = 0) -> torch.Tensor:
    """The denoising loop of diffusers' SD pipelines (txt2img, or img2img at `strength`) with their
    own timestep, begin-index and step-argument code; a smooth function stands in for the UNet."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import retrieve_timesteps

    pipe = SimpleNamespace(scheduler=scheduler)
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = [seed]
    generator = torch.Generator().manual_seed(seed)
    timesteps, _ = retrieve_timesteps(scheduler, steps, "cpu")
    latents = torch.randn(1, 4, 8, 8, generator=generator)
    if strength is None:
        latents = latents * scheduler.init_noise_sigma
    else:
        timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(pipe, steps, strength, "cpu")
        noise = torch.randn(latents.shape, generator=generator)
        latents = scheduler.add_noise(latents, noise, timesteps[:1].repeat(1))
    extra = StableDiffusionPipeline.prepare_extra_step_kwargs(pipe, generator, 0.0)
    for t in timesteps:
        model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        uncond, text = (0.1 * model_input + torch.tensor([0.0, 0.05]).view(2, 1, 1, 1)).chunk(2)
        latents = scheduler.step(uncond + 7.0 * (text - uncond), t, latents, **extra, return_dict=False)[0]
    return latents


@pytest.mark.parametrize(("sampler", "schedule"), PAIRS)
def test_every_pair_runs_the_txt2img_and_img2img_loops(sampler, schedule):
    # Built once and copied unused for each loop (the same state as a second build): diffusers' DPM2
    # schedulers spend ~0.3 s of CPU building their 1000-step table.
    built = make_scheduler(sampler, SD15_CONFIG, SAMPLERS, schedule)
    for strength in (None, 0.75):
        latents = _drive(copy.deepcopy(built), 4 if strength else 2, strength)
        assert latents.shape == (1, 4, 8, 8) and torch.isfinite(latents).all(), strength
        assert latents.std() > 1e-3, strength  # not flat


def test_the_cover_has_every_sampler_and_schedule_type_and_every_route():
    assert {sampler for sampler, _ in COVER} == set(SAMPLERS)
    assert {schedule for _, schedule in COVER} == set(SCHEDULE_TYPES)
    assert {_route(*pair) for pair in COVER} == {_route(*pair) for pair in PAIRS}
    assert {_route(*pair) for pair in COVER if pair[1] == "Automatic"} >= {_route(sampler, "Automatic") for sampler in SAMPLERS}


@pytest.mark.parametrize(("sampler", "schedule"), COVER)
def test_a_cover_of_the_pairs_makes_txt2img_and_img2img_images(pipes, sampler, schedule):
    txt2img, img2img, (positive, negative), config = pipes
    common = dict(prompt_embeds=positive, negative_prompt_embeds=negative, num_inference_steps=2, guidance_scale=7.0,
                  output_type="np")
    txt2img.scheduler = make_scheduler(sampler, config, SAMPLERS, schedule)
    if hasattr(txt2img.scheduler, "noise_sampler_seed"):
        txt2img.scheduler.noise_sampler_seed = [1]
    first = txt2img(height=64, width=64, generator=torch.Generator().manual_seed(1), **common).images
    _check(first)
    img2img.scheduler = make_scheduler(sampler, config, SAMPLERS, schedule)
    if hasattr(img2img.scheduler, "noise_sampler_seed"):
        img2img.scheduler.noise_sampler_seed = [2]
    second = img2img(image=torch.from_numpy(first).permute(0, 3, 1, 2), strength=0.75,
                     generator=torch.Generator().manual_seed(2), **{**common, "num_inference_steps": 4}).images
    _check(second)


def default_config():
    return json.loads((DEFAULT_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_pair_steps_through_the_zero_snr_schedule(sampler):
    """Driven as the pipelines drive a scheduler, at 2 and 21 steps and from an img2img start."""
    for schedule in SCHEDULE_TYPES:
        for steps, begin in ((2, 0), (21, 0), (21, 8)):
            scheduler = make_scheduler(sampler, default_config(), SAMPLERS, schedule)
            if hasattr(scheduler, "noise_sampler_seed"):
                scheduler.noise_sampler_seed = 0
            scheduler.set_timesteps(steps)
            takes_generator = "generator" in inspect.signature(scheduler.step).parameters
            timesteps = scheduler.timesteps[begin * scheduler.order:]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(begin * scheduler.order)
            generator = torch.Generator().manual_seed(0)
            sample = torch.randn(1, 4, 8, 8, generator=generator)
            sample = sample * scheduler.init_noise_sigma if begin == 0 else \
                scheduler.add_noise(torch.zeros_like(sample), sample, timesteps[:1])
            for t in timesteps:
                model_input = scheduler.scale_model_input(sample, t)
                extra = {"generator": generator} if takes_generator else {}
                sample = scheduler.step(0.1 * model_input, t, sample, **extra).prev_sample
            assert torch.isfinite(sample).all(), (sampler, schedule, steps, begin)


def test_the_eight_samplers_once_refused_on_the_default_model_make_images(engine):
    for sampler in FORMERLY_REFUSED:
        request = GenerationRequest(prompt="a red circle on a blue background", sampler_name=sampler, steps=4, seed=3,
                                    width=64, height=64)
        pixels = np.asarray(engine.run(request).images[0].image).astype(float)
        assert pixels.shape == (64, 64, 3) and pixels.std() > 1.0, sampler
    assert isinstance(make_scheduler("Heun", default_config()), KScheduler)  # the k-diffusion sampler runs it
