"""Reproduce: generate -> save -> regenerate from the saved PNG alone -> identical pixels.

For txt2img, img2img, inpaint and a canny ControlNet unit, and for the second image of a batch
(on CPU a batch is not the same arithmetic as single images, so its whole batch is regenerated).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, PngImagePlugin

from studio.records import storage
from studio.records.reproduce import NoRecipeError, read_recipe, recipe_warnings, reproduce_request
from studio.request import ControlUnit, GenerationRequest
from studio.service.container import Services, build_services
from studio.service.extensions.manager import ExtensionManager

BASE = GenerationRequest(prompt="a red circle on a blue background", negative_prompt="green",
                         sampler_name="Euler a", steps=3, cfg_scale=6, width=64, height=64, seed=2024)


def scene() -> Image.Image:
    image = Image.new("RGB", (64, 64), (40, 60, 200))
    ImageDraw.Draw(image).ellipse((14, 14, 50, 50), fill=(220, 30, 30))
    return image


def square_mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


@pytest.fixture(scope="module")
def studio(engine, shared_settings) -> Services:
    return build_services(shared_settings, engine=engine, extensions=ExtensionManager(shared_settings))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


CASES = {
    "txt2img": BASE,
    "img2img": BASE.replace(init_image=scene(), denoising_strength=0.7),
    "inpaint": BASE.replace(init_image=scene(), mask=square_mask(), denoising_strength=0.9, inpainting_fill=2),
    "controlnet": BASE.replace(controlnet_units=(
        ControlUnit(control_type="canny", image=scene(), module="canny", weight=0.9, guidance_end=0.8),)),
}


@pytest.mark.parametrize("mode", list(CASES))
def test_a_saved_png_regenerates_identical_pixels(studio, mode):
    job = studio.generation.submit(CASES[mode])
    saved = job.images[0]
    assert saved.path is not None and job.request.mode == ("txt2img" if mode == "controlnet" else mode)
    request, warnings = reproduce_request(saved.path, studio.generation.engine.models)
    assert warnings == []
    assert request.to_dict() == job.request.to_dict()  # images and ControlNet units included
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path)))
    assert done.image.infotext == saved.infotext and done.warnings == []
    if mode == "controlnet":
        assert "ControlNet 0: \"Module: canny, Model: controlnet-canny" in done.image.infotext


@pytest.mark.parametrize(("batch_size", "n_iter", "index"), [(2, 1, 1), (1, 2, 1)])
def test_an_image_of_a_batch_is_reproduced_exactly(studio, batch_size, n_iter, index):
    job = studio.generation.submit(BASE.replace(steps=2, batch_size=batch_size, n_iter=n_iter))
    saved = job.images[index]
    recipe = read_recipe(saved.path)
    assert recipe.request.seed == job.request.seed + index - recipe.position  # its own batch only
    assert (recipe.request.batch_size, recipe.request.n_iter, recipe.position) == (batch_size, 1, index % batch_size)
    done = studio.generation.reproduce_image(saved.path)
    assert done.image.seed == saved.seed == job.request.seed + index
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path)))


def test_a_different_model_hash_versions_or_threads_are_warned_about(studio, tmp_path):
    saved = studio.generation.submit(BASE.replace(steps=1), save=False).images[0]
    recipe = {**saved.recipe, "model_hash": "0123456789", "torch_threads": torch.get_num_threads() + 1,
              "versions": {**saved.recipe["versions"], "diffusers": "0.1.0"}}
    path = tmp_path / "changed.png"
    saved.image.save(path, pnginfo=storage.png_info(saved.infotext, recipe))
    _, warnings = reproduce_request(path, studio.generation.engine.models)
    text = "\n".join(warnings)
    assert len(warnings) == 3
    assert "0123456789" in text and "diffusers 0.1.0" in text and "torch threads" in text
    assert recipe_warnings(read_recipe(path)) == warnings[1:]  # without a model manager: no hash check


def test_a_png_without_our_recipe_is_refused_with_a_reason(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64")
    path = tmp_path / "a1111.png"
    scene().save(path, pnginfo=info)
    with pytest.raises(NoRecipeError, match="no studio recipe"):
        reproduce_request(path)
    broken = tmp_path / "broken.png"
    scene().save(broken, pnginfo=storage.png_info("x", None))
    with pytest.raises(NoRecipeError):
        read_recipe(broken)


@pytest.mark.parametrize("request_fields, index", [({"seed": "5"}, 0), ({"seed": 5}, "x"), ({"batch_size": "x"}, 0)])
def test_a_recipe_with_wrong_types_is_one_clear_sentence(tmp_path, request_fields, index):
    """Issue 13 item 8: PNG Info showed "can only concatenate str (not "int") to str"."""
    import json

    from studio.records.pnginfo import read_generation_info

    info = PngImagePlugin.PngInfo()
    info.add_text(storage.STUDIO_KEY, json.dumps({"request": {"prompt": "x", **request_fields}, "index": index}))
    path = tmp_path / "typed.png"
    scene().save(path, pnginfo=info)
    with pytest.raises(NoRecipeError, match="recipe in this PNG is damaged"):
        read_recipe(path)
    read = read_generation_info(path)  # PNG Info: the bad field is left out with a sentence saying so
    bad = next(iter(request_fields)) if index == 0 else "index"
    assert any(f"left out the recipe's {bad}" in warning for warning in read["warnings"])
    assert read["fields"]["prompt"] == "x" and isinstance(read["fields"]["seed"], int)


# Stochastic k-diffusion samplers (issue 24 §1): the step noise comes from the images' seeds
# (ancestral: the run's generators; SDE: Brownian trees seeded per image), so a saved PNG regenerates
# bit for bit, in txt2img and in img2img.
@pytest.mark.parametrize(("sampler", "schedule", "mode"), [
    ("DPM++ 2S a", "Karras", "txt2img"), ("DPM++ 2M SDE Heun", "Exponential", "txt2img"),
    ("Euler a", "Beta", "img2img"), ("Restart", "Align Your Steps", "img2img")])
def test_a_stochastic_k_diffusion_sampler_reproduces_bit_exact(studio, sampler, schedule, mode):
    request = CASES[mode].replace(sampler_name=sampler, scheduler=schedule, steps=4)
    job = studio.generation.submit(request)
    saved = job.images[0]
    assert f"Sampler: {sampler}, Schedule type: {schedule}," in saved.infotext
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path)))
    other = studio.generation.submit(request.replace(seed=request.seed + 1)).images[0]
    assert not np.array_equal(pixels(Image.open(other.path)), pixels(Image.open(saved.path)))
