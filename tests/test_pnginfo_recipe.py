"""PNG Info: a recipe's fields are validated before they reach a form (a PNG is untrusted input)."""
from __future__ import annotations

import json

from PIL import Image, PngImagePlugin

from studio.records.pnginfo import read_generation_info
from studio.request import GenerationRequest


def png_with_recipe(path, recipe) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("studio", json.dumps(recipe))
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)


def test_garbage_recipe_fields_are_left_out_with_a_warning(tmp_path):
    path = tmp_path / "garbage.png"
    request = {"prompt": "a cat", "steps": True, "cfg_scale": "x", "width": 64, "height": 72, "seed": 5,
               "sampler_name": 7, "controlnet_units": [5], "init_image": "data:image/png;base64,AAAA",
               "mask_blur": 10**9}
    png_with_recipe(path, {"request": request, "index": -5})
    info = read_generation_info(path)
    assert info["fields"] == {"prompt": "a cat", "width": 64, "height": 72, "seed": 5, "batch_size": 1, "n_iter": 1}
    text = "\n".join(info["warnings"])
    for name in ("steps", "cfg_scale", "sampler_name", "controlnet_units", "init_image", "mask_blur", "index -5"):
        assert f"recipe's {name}" in text
    GenerationRequest.from_dict(info["fields"]).validate()  # what reaches the form is a valid request


def test_a_valid_recipe_passes_unchanged_and_picks_its_image_of_the_batch(tmp_path):
    path = tmp_path / "good.png"
    request = GenerationRequest(prompt="a dog", steps=3, width=64, height=64, seed=10, batch_size=2).to_dict()
    png_with_recipe(path, {"request": request, "index": 1})
    info = read_generation_info(path)
    assert info["warnings"] == []
    assert info["fields"]["seed"] == 11 and info["fields"]["steps"] == 3 and info["fields"]["batch_size"] == 1
    png_with_recipe(path, {"request": request, "index": 2})  # beyond its batch of 2
    assert "recipe's index 2" in read_generation_info(path)["warnings"][0]
