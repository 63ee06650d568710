"""Hires fix on the default model: sizes, both passes in progress, infotext round trip, Reproduce."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.records.infotext import params_to_request_fields, parse_infotext
from studio.records.reproduce import reproduce_request
from studio.request import GenerationRequest, RequestError
from studio.service.container import Services, build_services
from studio.service.extensions.manager import ExtensionManager
from tests.support.esrgan import write_esrgan

BASE = GenerationRequest(prompt="a red circle on a blue background", sampler_name="Euler", steps=3, cfg_scale=6,
                         width=64, height=64, seed=7, enable_hr=True, hr_scale=2.0, hr_upscaler="Latent",
                         hr_second_pass_steps=4, denoising_strength=0.5)


@pytest.fixture(scope="module")
def studio(engine, shared_settings) -> Services:
    write_esrgan(shared_settings.models_dir / "ESRGAN", "tiny-esrgan-4x")
    return build_services(shared_settings, engine=engine, extensions=ExtensionManager(shared_settings))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("upscaler", ["Latent (nearest-exact)", "Lanczos", "tiny-esrgan-4x"])
def test_hires_doubles_the_size_and_runs_both_passes(studio, upscaler):
    seen: list[tuple[int, int, str]] = []
    job = studio.generation.submit(BASE.replace(hr_upscaler=upscaler), lambda p: seen.append((p.step, p.steps, p.phase)))
    image = Image.open(job.images[0].path)
    assert image.size == (128, 128)
    # 3 first-pass steps, then floor(0.5 * 4) = 2 hires steps, counted on from 3 of 5.
    assert [s for s, _, _ in seen] == [1, 2, 3, 4, 5] and {t for _, t, _ in seen} == {5}
    assert [p for _, _, p in seen] == ["", "", "", "hires", "hires"]
    assert f"Hires upscaler: {upscaler}" in job.images[0].infotext


def test_hires_differs_from_a_plain_upscale(studio):
    hires = pixels(Image.open(studio.generation.submit(BASE).images[0].path))
    plain = pixels(Image.open(studio.generation.submit(BASE.replace(enable_hr=False)).images[0].path).resize((128, 128)))
    assert np.abs(hires.astype(int) - plain).mean() > 1


def test_infotext_has_a1111_keys_and_parses_back(studio):
    request = BASE.replace(hr_resize_x=128, hr_resize_y=96, hr_prompt="a blue square", hr_sampler_name="DDIM")
    job = studio.generation.submit(request)
    text = job.images[0].infotext
    for part in ("Denoising strength: 0.5", "Hires resize: 128x96", "Hires steps: 4", "Hires upscaler: Latent",
                 "Hires sampler: DDIM", "Hires prompt: a blue square"):
        assert part in text
    assert Image.open(job.images[0].path).size == (128, 96)
    fields = params_to_request_fields(parse_infotext(text))
    assert {k: fields[k] for k in ("enable_hr", "hr_resize_x", "hr_resize_y", "hr_second_pass_steps", "hr_upscaler",
                                   "hr_sampler_name", "hr_prompt", "denoising_strength")} == {
        "enable_hr": True, "hr_resize_x": 128, "hr_resize_y": 96, "hr_second_pass_steps": 4, "hr_upscaler": "Latent",
        "hr_sampler_name": "DDIM", "hr_prompt": "a blue square", "denoising_strength": 0.5}
    # floor(0.1 * 4) = 0 hires steps: the upscaled first pass as it is, still recorded as hires fix.
    plain = studio.generation.submit(BASE.replace(hr_scale=1.5, denoising_strength=0.1))
    assert Image.open(plain.images[0].path).size == (96, 96)
    scale = params_to_request_fields(parse_infotext(plain.images[0].infotext))
    assert scale["hr_scale"] == 1.5 and scale["enable_hr"] and "hr_resize_x" not in scale


@pytest.mark.parametrize(("upscaler", "batch_size"), [("Latent", 2), ("tiny-esrgan-4x", 1)])
def test_reproduce_is_bit_identical(studio, upscaler, batch_size):
    job = studio.generation.submit(BASE.replace(hr_upscaler=upscaler, batch_size=batch_size))
    saved = job.images[-1]
    request, warnings = reproduce_request(saved.path, studio.generation.engine.models)
    assert warnings == [] and request.enable_hr and request.hr_upscaler == upscaler
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path)))


@pytest.mark.parametrize(("changes", "message"), [
    ({"hr_scale": 0.5}, "hr_scale must be between 1 and 4"),
    ({"hr_resize_x": 100}, "hr_resize_x must be a multiple of 8"),
    ({"hr_scale": 4.0, "width": 1024}, "hires width must be between"),
    ({"hr_upscaler": "nope"}, "unknown hr_upscaler 'nope'"),
    ({"hr_sampler_name": "nope"}, "unknown hr_sampler_name 'nope'"),
    ({"init_image": Image.new("RGB", (64, 64))}, "enable_hr .hires. fix. is for txt2img"),
])
def test_bad_hires_fields_are_refused(studio, changes, message):
    with pytest.raises(RequestError, match=message):
        studio.generation.submit(BASE.replace(**changes))
