"""Variation seeds (A1111's subseed, subseed_strength, resize seed from width/height) on the
embedded default model: the noise maths, the images, infotext, Reproduce and the X/Y/Z axes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.generation.variation import Variation, image_noise, slerp
from studio.records.infotext import params_to_request_fields, parse_infotext
from studio.request import GenerationRequest, RequestError
from studio.service.container import Services, build_services
from studio.service.extensions.manager import ExtensionManager
from tests.test_reproduce import scene, square_mask  # the same source image and mask

BASE = GenerationRequest(prompt="a red circle on a blue background", negative_prompt="green", sampler_name="Euler",
                         steps=3, cfg_scale=6, width=64, height=64, seed=77)


@pytest.fixture(scope="module")
def studio(engine, shared_settings) -> Services:
    return build_services(shared_settings, engine=engine, extensions=ExtensionManager(shared_settings))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def randn(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --- the noise -------------------------------------------------------------------------------

def test_slerp_ends_are_the_two_noises_and_the_middle_keeps_the_norm():
    low, high = randn(1, (4, 8, 8)), randn(2, (4, 8, 8))
    assert torch.equal(slerp(0.0, low, high), low)
    assert torch.allclose(slerp(1.0, low, high), high, atol=1e-5)
    middle = slerp(0.5, low, high)
    # A spherical blend keeps the noise's scale (a linear one would shrink it by about 1/sqrt(2)).
    assert abs(middle.std().item() - 1.0) < 0.15
    assert abs((0.5 * low + 0.5 * high).std().item() - 1.0) > 0.2


def test_strength_slerps_between_the_seed_and_the_variation_seed():
    shape = (4, 8, 8)
    none = image_noise(shape, 5, 9, Variation(9, 0.0, (64, 64)), 8)
    assert torch.equal(none, randn(5, shape))  # resize from the same size changes nothing
    full = image_noise(shape, 5, 9, Variation(9, 1.0, None), 8)
    assert torch.allclose(full, randn(9, shape), atol=1e-5)
    part = image_noise(shape, 5, 9, Variation(9, 0.3, None), 8)
    assert not torch.allclose(part, randn(5, shape), atol=0.05) and not torch.allclose(part, randn(9, shape), atol=0.05)


def test_resize_seed_from_pastes_the_smaller_noise_centred():
    # Drawn at 48x32 pixels (6x4 latents), pasted in the middle of 8x8 latents (A1111's rule).
    noise = image_noise((4, 8, 8), 3, 0, Variation(0, 0.0, (48, 32)), 8)
    small = randn(3, (4, 4, 6))
    assert torch.equal(noise[:, 2:6, 1:7], small)
    assert torch.equal(noise[:, :2, :], randn(3, (4, 8, 8))[:, :2, :])  # outside: the seed's noise at full size
    # From a larger size: its centre, cropped.
    large = image_noise((4, 8, 8), 3, 0, Variation(0, 0.0, (96, 80)), 8)
    assert torch.equal(large, randn(3, (4, 10, 12))[:, 1:9, 2:10])


# --- images ----------------------------------------------------------------------------------

def test_strength_zero_is_the_plain_seed_and_strength_one_is_the_variation_seed(studio):
    plain = studio.generation.submit(BASE, save=False).images[0]
    zero = studio.generation.submit(BASE.replace(subseed=123, subseed_strength=0.0), save=False).images[0]
    assert np.array_equal(pixels(plain.image), pixels(zero.image))
    assert "Variation seed" not in zero.infotext
    half = studio.generation.submit(BASE.replace(subseed=123, subseed_strength=0.5), save=False).images[0]
    other = studio.generation.submit(BASE.replace(seed=123), save=False).images[0]
    assert np.abs(pixels(half.image) - pixels(plain.image)).mean() > 2
    assert np.abs(pixels(half.image) - pixels(other.image)).mean() > 2
    # Strength 1: the variation seed's noise (up to float rounding in the slerp).
    full = studio.generation.submit(BASE.replace(subseed=123, subseed_strength=1.0), save=False).images[0]
    assert np.abs(pixels(full.image) - pixels(other.image)).mean() < 2


def test_image_i_of_a_batch_has_variation_seed_subseed_plus_i(studio):
    request = BASE.replace(steps=2, subseed=500, subseed_strength=0.4, n_iter=2)
    job = studio.generation.submit(request, save=False)
    second = studio.generation.submit(request.replace(seed=BASE.seed + 1, subseed=501, n_iter=1), save=False).images[0]
    assert np.array_equal(pixels(job.images[1].image), pixels(second.image))
    params = parse_infotext(job.images[1].infotext)
    assert (params["Seed"], params["Variation seed"], params["Variation seed strength"]) == ("78", "501", "0.4")


def test_a_random_variation_seed_is_drawn_and_recorded(studio):
    job = studio.generation.submit(BASE.replace(steps=2, subseed=-1, subseed_strength=0.25), save=False)
    assert 0 <= job.request.subseed and f"Variation seed: {job.request.subseed}," in job.images[0].infotext


CASES = {
    "txt2img": BASE.replace(subseed=9, subseed_strength=0.6, seed_resize_from_w=48, seed_resize_from_h=64),
    "img2img": BASE.replace(init_image=scene(), denoising_strength=0.8, subseed=9, subseed_strength=0.6),
    "inpaint": BASE.replace(init_image=scene(), mask=square_mask(), denoising_strength=1.0, subseed=9, subseed_strength=0.6),
    "hires": BASE.replace(steps=2, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.6,
                          subseed=9, subseed_strength=0.6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_mode_uses_the_variation_and_reproduces_it_exactly(studio, case):
    request = CASES[case]
    plain = studio.generation.submit(request.replace(subseed_strength=0.0, seed_resize_from_w=-1, seed_resize_from_h=-1),
                          save=False).images[0]
    saved = studio.generation.submit(request).images[0]
    assert np.abs(pixels(saved.image) - pixels(plain.image)).max() > 0, "the variation changed nothing"
    fields = params_to_request_fields(parse_infotext(saved.infotext))
    assert (fields["subseed"], fields["subseed_strength"]) == (9, 0.6)
    if case == "txt2img":
        assert "Seed resize from: 48x64" in saved.infotext
        assert (fields["seed_resize_from_w"], fields["seed_resize_from_h"]) == (48, 64)
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path)))
    assert done.image.infotext == saved.infotext


def test_an_infotext_without_variation_keys_means_plain_seeds():
    fields = params_to_request_fields(parse_infotext("a cat\nSteps: 3, Sampler: Euler, Seed: 5, Size: 64x64"))
    assert (fields["subseed_strength"], fields["seed_resize_from_w"], fields["seed_resize_from_h"]) == (0.0, -1, -1)


@pytest.mark.parametrize(("changes", "message"), [
    ({"subseed_strength": 1.5}, "subseed_strength"),
    ({"subseed": -2}, "subseed"),
    ({"seed_resize_from_w": 7}, "seed_resize_from_w must be 0 \\(off\\) or at least 8"),
    ({"seed_resize_from_h": 99999}, "seed_resize_from_h"),
])
def test_bad_variation_values_are_refused_by_name(changes, message):
    with pytest.raises(RequestError, match=message):
        BASE.replace(**changes).validate()

