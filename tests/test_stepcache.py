"""Step caching (cache_interval, DeepCache): a real speed option recorded and reproduced exactly.

Runs the embedded default model at 64x64 on CPU.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.records.infotext import params_to_request_fields, parse_infotext, request_params
from studio.records.reproduce import reproduce_request
from studio.request import GenerationRequest, RequestError
from studio.service.container import Services, build_services
from studio.service.extensions.manager import ExtensionManager

BASE = GenerationRequest(prompt="a red circle on a blue background", sampler_name="Euler", steps=6,
                         cfg_scale=6, width=64, height=64, seed=77)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


@pytest.fixture(scope="module")
def studio(engine, shared_settings) -> Services:
    return build_services(shared_settings, engine=engine, extensions=ExtensionManager(shared_settings))


def test_cached_steps_change_the_image_a_little_and_leave_uncached_runs_untouched(engine):
    plain = pixels(engine.run(BASE).images[0].image)
    cached = pixels(engine.run(BASE.replace(cache_interval=3)).images[0].image)
    again = pixels(engine.run(BASE.replace(cache_interval=3)).images[0].image)
    after = pixels(engine.run(BASE).images[0].image)

    assert np.array_equal(cached, again)  # deterministic
    assert np.array_equal(plain, after)  # the UNet is unwrapped after the run
    assert not np.array_equal(plain, cached)  # deep blocks really were skipped
    # ... but it is still the same picture: close in every colour channel.
    assert np.abs(plain.mean(axis=(0, 1)) - cached.mean(axis=(0, 1))).max() < 20


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_step_caching_works_in_the_other_modes(engine, mode):
    source = Image.new("RGB", (64, 64), (200, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    request = BASE.replace(init_image=source, denoising_strength=0.8, cache_interval=2,
                           mask=mask if mode == "inpaint" else None)
    result = engine.run(request)
    assert result.images[0].image.size == (64, 64) and result.request.mode == mode


def test_cache_interval_is_written_to_infotext_and_parsed_back():
    request = BASE.replace(cache_interval=3)
    params = request_params(request, "m", "h")
    assert params["Cache interval"] == 3
    assert "Cache interval" not in request_params(BASE, "m", "h")  # off: A1111's text as before
    text = "p\nSteps: 6, Sampler: Euler, CFG scale: 6, Seed: 77, Size: 64x64, Cache interval: 3"
    assert params_to_request_fields(parse_infotext(text))["cache_interval"] == 3


@pytest.mark.parametrize("value", [0, 6, 2.5, "3"])
def test_a_bad_cache_interval_names_the_field(value):
    with pytest.raises(RequestError, match="cache_interval"):
        BASE.replace(cache_interval=value).validate()


def test_reproduce_regenerates_a_cached_image_bit_identically(studio):
    job = studio.generation.submit(BASE.replace(cache_interval=3))
    saved = job.images[0]
    assert "Cache interval: 3" in saved.image.info.get("parameters", "") or saved.path is not None
    request, warnings = reproduce_request(saved.path, studio.generation.engine.models)
    assert warnings == [] and request.cache_interval == 3
    again = studio.generation.submit(request)
    assert np.array_equal(pixels(Image.open(saved.path)), pixels(Image.open(again.images[0].path)))
    # The infotext alone (what A1111 tools read) carries it too.
    assert parse_infotext(Image.open(saved.path).info["parameters"])["Cache interval"] == "3"
