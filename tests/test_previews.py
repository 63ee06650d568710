"""Live previews (studio/generation/previews.py) on the embedded default model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny

from studio.generation.previews import Previewer, PreviewError, model_family, preview_image
from studio.generation.results import Progress
from studio.request import GenerationRequest
from studio.service.container import build_services
from studio.service.extensions.manager import ExtensionManager

REQUEST = GenerationRequest(prompt="a red circle on a blue background", sampler_name="Euler", steps=8,
                            cfg_scale=7, width=64, height=64, seed=12)


@pytest.fixture(scope="module")
def final_run(engine):
    """The final image and the latents the sampler handed to the last step callback."""
    seen: list[torch.Tensor] = []
    result = engine.run(REQUEST, lambda progress: seen.append(progress.latents.clone()))
    return np.asarray(result.images[0].image.convert("RGB")).astype(float), seen[-1], engine.models.current().pipe


def test_the_default_model_uses_its_own_fitted_factors(final_run):
    assert model_family(final_run[2]) == "studio-default-64px"


def test_approx_cheap_preview_has_the_final_images_colours(final_run):
    final, latents, pipe = final_run
    preview = np.asarray(preview_image(latents, pipe, "Approx cheap")).astype(float)
    assert preview.shape[2] == 3 and preview.shape[0] == latents.shape[-2]  # one pixel per latent cell
    error = np.abs(preview.mean(axis=(0, 1)) - final.mean(axis=(0, 1)))
    # Measured 6 / 21 / 25 (R/G/B, 0..255); a mid-grey or all-zero-factor preview is off by > 60.
    assert error.max() < 30, error


def test_full_preview_is_the_final_decode(final_run):
    final, latents, pipe = final_run
    preview = np.asarray(preview_image(latents, pipe, "Full")).astype(float)
    assert preview.shape == final.shape
    assert np.abs(preview - final).mean() < 2


def test_taesd_preview_uses_a_tiny_decoder_from_vae_approx(final_run, tmp_path: Path):
    _, latents, pipe = final_run
    previewer = Previewer(tmp_path / "VAE-approx")
    with pytest.raises(PreviewError, match="VAE-approx"):
        previewer.preview(latents, pipe, "TAESD")
    tiny = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                           num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    tiny.save_pretrained(tmp_path / "VAE-approx" / "taesd")
    image = previewer.preview(latents, pipe, "TAESD")
    # Shown at the image's own size (the tiny decoder upsamples by 8, this model's VAE by its own factor).
    assert image.size == (latents.shape[-1] * pipe.vae_scale_factor, latents.shape[-2] * pipe.vae_scale_factor)


def test_an_unknown_method_is_refused(final_run):
    with pytest.raises(PreviewError, match="Approx cheap"):
        preview_image(final_run[1], final_run[2], "Fancy")


def own_outputs(settings, tmp_path: Path):
    """The session's settings with outputs (and so config.json, where options other tests set are saved) of this test's own."""
    return settings.replace(outputs_dir=tmp_path / "outputs")


def test_the_studio_makes_a_preview_every_n_steps_only(engine, shared_settings, final_run, tmp_path):
    shared_settings = own_outputs(shared_settings, tmp_path)
    studio = build_services(shared_settings.replace(live_preview_every=3), engine=engine,
                            extensions=ExtensionManager(shared_settings))
    latents = final_run[1]
    due = [step for step in range(1, 9) if studio.generation.live_preview(Progress(step=step, steps=8, latents=latents))]
    assert due == [3, 6]  # not the last step: the final image comes right after
    off = build_services(shared_settings.replace(live_preview_every=0), engine=engine, extensions=ExtensionManager(shared_settings))
    assert off.generation.live_preview(Progress(step=3, steps=8, latents=latents)) is None


# -- issue 25 §9: the preview shows the model's guess of the clean image (x̂0), not the noisy x_t

HALFWAY = REQUEST.replace(steps=20, seed=21)


def _distance(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean())


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "DPM++ 2M Karras", "DDIM", "UniPC"])
def test_the_halfway_preview_is_closer_to_the_final_image_than_to_the_noise(engine, shared_settings, sampler, tmp_path):
    shared_settings = own_outputs(shared_settings, tmp_path)
    studio = build_services(shared_settings.replace(live_preview_every=10), engine=engine,
                            extensions=ExtensionManager(shared_settings))
    previews, noisy = [], []

    def on_step(progress):
        image = studio.generation.live_preview(progress)
        if image is not None:
            previews.append(image)
            noisy.append(engine.preview(progress.latents, "Approx cheap"))  # what the preview used to show

    result = engine.run(HALFWAY.replace(sampler_name=sampler), on_step)
    final = result.images[0].image.convert("RGB")
    assert len(previews) == 1 and previews[0].size == final.size  # step 10 of 20, at the image's full size
    to_final, to_noise = _distance(previews[0], final), _distance(previews[0], noisy[0])
    # Measured (Euler, 0..255): 25 to the final image, 48 to the x_t picture it used to show.
    assert to_final < to_noise, (to_final, to_noise)
    assert to_final < _distance(noisy[0], final)


@pytest.mark.parametrize("method", ["Approx cheap", "Full"])
def test_every_method_previews_the_denoised_latents(engine, method):
    seen = []
    final = engine.run(HALFWAY, lambda progress: seen.append((progress.denoised, progress.latents.clone()))
                       if progress.step == 10 else None)
    x0, latents = seen[0]
    assert x0 is not None and x0.shape == latents.shape
    picture = engine.preview(x0, method)
    noise = engine.preview(latents, method)
    final_image = final.images[0].image.convert("RGB")
    assert picture.size == final_image.size
    assert _distance(picture, final_image) < _distance(noise, final_image)
