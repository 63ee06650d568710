"""Prompt styles (A1111's styles.csv): reading, writing, applying, and a styled generation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.prompting.styles import (
    EXAMPLE_STYLES,
    Style,
    apply_styles,
    infotext_style_names,
    load_styles,
    merge_prompts,
    parse_styles,
    save_style,
    styles_source,
    unapply_styles,
)
from studio.records.infotext import params_to_request_fields, parse_infotext
from studio.records.pnginfo import read_generation_info
from studio.records.reproduce import read_recipe
from studio.request import GenerationRequest, RequestError
from studio.service.container import build_services
from studio.service.extensions.manager import ExtensionManager

A1111_CSV = '''name,prompt,negative_prompt
"Oil, thick","oil painting of {prompt}, impasto","photo"
Sharp,"sharp focus, 8k",blurry
Empty,,
'''


def test_a1111_csv_is_read_with_quotes_and_placeholders():
    styles = parse_styles(A1111_CSV)
    assert list(styles) == ["Oil, thick", "Sharp", "Empty"]
    assert styles["Oil, thick"] == Style("Oil, thick", "oil painting of {prompt}, impasto", "photo")


def test_styles_merge_as_a1111_does():
    assert merge_prompts("oil painting of {prompt}", "a cat") == "oil painting of a cat"
    assert merge_prompts("sharp focus", "a cat ") == "a cat, sharp focus"
    assert merge_prompts("sharp focus", "") == "sharp focus"
    assert merge_prompts("", "a cat") == "a cat"
    styles = parse_styles(A1111_CSV)
    assert apply_styles("a cat", "", ["Oil, thick", "Sharp"], styles) == (
        "oil painting of a cat, impasto, sharp focus, 8k", "photo, blurry")
    with pytest.raises(RequestError, match="unknown style 'Nope'"):
        apply_styles("a cat", "", ["Nope"], styles)


def test_the_shipped_example_is_used_until_the_user_saves_a_style(settings):
    assert styles_source(settings) == EXAMPLE_STYLES
    shipped = load_styles(settings)
    assert "Watercolor" in shipped
    saved = save_style(settings, Style("Mine", "{prompt}, in ink", "colour"))
    assert settings.styles_file.is_file() and list(saved)[-1] == "Mine"
    again = load_styles(settings)
    assert again == saved and set(shipped) < set(again)  # the examples were copied, the new style added
    with pytest.raises(RequestError, match="name"):
        save_style(settings, Style("  ", "x"))


def test_a_styled_request_saves_the_expanded_prompt_and_reproduces(engine, shared_settings):
    studio = build_services(shared_settings, engine=engine, extensions=ExtensionManager(shared_settings))
    save_style(shared_settings, Style("Blue ground", "{prompt} on a blue background", "green"))
    request = GenerationRequest(prompt="a red circle", styles=("Blue ground",), steps=2, width=64, height=64, seed=5)
    saved = studio.generation.submit(request).images[0]
    assert saved.infotext.startswith("a red circle on a blue background\nNegative prompt: green\n")
    assert 'Styles: "[\\"Blue ground\\"]"' in saved.infotext  # a JSON list, quoted as infotext quotes values
    fields = params_to_request_fields(parse_infotext(saved.infotext))
    assert fields["prompt"] == "a red circle on a blue background" and "styles" not in fields  # not applied twice
    recipe = read_recipe(saved.path)
    assert recipe.request.prompt == "a red circle on a blue background" and recipe.request.styles == ("Blue ground",)
    done = studio.generation.reproduce_image(saved.path)  # the recipe is not styled a second time
    assert np.array_equal(np.asarray(done.image.image), np.asarray(Image.open(saved.path).convert("RGB")))
    assert done.image.infotext == saved.infotext
    plain = studio.generation.submit(request.replace(prompt="a red circle on a blue background", negative_prompt="green",
                                          styles=()), save=False).images[0]
    assert np.array_equal(np.asarray(plain.image), np.asarray(Image.open(saved.path).convert("RGB")))
    with pytest.raises(RequestError, match="unknown style"):
        studio.generation.submit(request.replace(styles=("Missing",)))
    pasted = studio.outputs.read_png(saved.path)["fields"]  # PNG Info -> tab: bare prompt, style selected again
    assert (pasted["prompt"], pasted["negative_prompt"], pasted["styles"]) == ("a red circle", "", ["Blue ground"])
    assert "styles" not in read_generation_info(saved.path)["fields"]  # without the styles: the styled prompt


def test_styles_are_taken_out_of_a_prompt_only_when_exact():
    styles = parse_styles(A1111_CSV)
    styled = apply_styles("a cat", "ugly", ["Oil, thick", "Sharp"], styles)
    assert unapply_styles(*styled, ["Oil, thick", "Sharp"], styles) == ("a cat", "ugly")
    assert unapply_styles("a cat, sharp focus, 8k", "blurry", ["Sharp"], styles) == ("a cat", "")
    assert unapply_styles("a cat", "", ["Sharp"], styles) is None  # not in the prompt
    assert unapply_styles(*styled, ["Unknown"], styles) is None
    assert infotext_style_names({"Styles": '["a", "b"]'}) == ["a", "b"] and infotext_style_names({"Styles": "x"}) == []


def test_styles_field_validation_and_cli_flag():
    from studio.cli.main import build_parser
    from studio.cli.request_flags import request_from_args

    with pytest.raises(RequestError, match="styles"):
        GenerationRequest(styles="Sharp").validate()
    assert GenerationRequest.from_dict({"styles": ["a", "b"]}).styles == ("a", "b")
    args = build_parser().parse_args(["generate", "--prompt", "x", "--styles", "Sharp", "Oil", "--clip-skip", "2"])
    request = request_from_args(args)
    assert request.styles == ("Sharp", "Oil") and request.clip_skip == 2
