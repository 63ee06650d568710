"""Every sampler × schedule type pair in the registry runs (A1111 1.10 runs them all): a 2-step
txt2img and img2img on a tiny real SD 1.5-config pipeline, with the scheduler the engine builds;
the images are finite and not flat. On the default model's zero-terminal-SNR schedule every pair
is driven through the scheduler interface, and the samplers once refused there make images."""
import json

import numpy as np
import pytest
import torch

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR
from studio.generation.kscheduler import KScheduler
from studio.generation.samplers import SAMPLERS, SCHEDULE_TYPES, make_scheduler
from studio.request import GenerationRequest

PAIRS = [(sampler, schedule) for sampler in SAMPLERS for schedule in SCHEDULE_TYPES]
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


@pytest.mark.parametrize(("sampler", "schedule"), PAIRS)
def test_every_pair_makes_a_txt2img_and_an_img2img_image(pipes, sampler, schedule):
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
            scheduler.set_timesteps(steps)
            timesteps = scheduler.timesteps[begin * scheduler.order:]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(begin * scheduler.order)
            generator = torch.Generator().manual_seed(0)
            sample = torch.randn(1, 4, 8, 8, generator=generator)
            sample = sample * scheduler.init_noise_sigma if begin == 0 else \
                scheduler.add_noise(torch.zeros_like(sample), sample, timesteps[:1])
            for t in timesteps:
                model_input = scheduler.scale_model_input(sample, t)
                sample = scheduler.step(0.1 * model_input, t, sample, generator=generator).prev_sample
            assert torch.isfinite(sample).all(), (sampler, schedule, steps, begin)


def test_the_eight_samplers_once_refused_on_the_default_model_make_images(engine):
    for sampler in FORMERLY_REFUSED:
        request = GenerationRequest(prompt="a red circle on a blue background", sampler_name=sampler, steps=4, seed=3,
                                    width=64, height=64)
        pixels = np.asarray(engine.run(request).images[0].image).astype(float)
        assert pixels.shape == (64, 64, 3) and pixels.std() > 1.0, sampler
    assert isinstance(make_scheduler("Heun", default_config()), KScheduler)  # the k-diffusion sampler runs it
