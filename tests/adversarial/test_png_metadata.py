"""Hostile PNGs: damaged or malicious `studio` recipes and `parameters` text, sent to PNG Info and
Reproduce over HTTP and read by the UI's PNG Info function. None may crash, hang or reach the network."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from studio.errors import StudioError
from studio.records.pnginfo import read_generation_info
from tests.adversarial.conftest import MARKER, Tally, assert_handled

FAST = {"prompt": "a red circle on a blue background", "steps": 2, "width": 64, "height": 64, "seed": 3,
        "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def genuine(api) -> tuple[Image.Image, dict[str, Any]]:
    """A PNG this studio made, and its recipe."""
    response = api.post("/sdapi/v1/txt2img", json=FAST)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    image.load()
    return image, json.loads(image.info["studio"])


def png_with(image: Image.Image, chunks: dict[str, str]) -> str:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode()


def recipe_with(recipe: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps(recipe))
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


DAMAGED = {
    "batch_size 'x'": (("request", "batch_size"), "x"),
    "seed null": (("request", "seed"), None),
    "index Infinity": (("index",), float("inf")),
    "index -5": (("index",), -5),
    "index past the batch": (("index",), 99),
    "versions a list": (("versions",), [1, 2]),
    "controlnet_units [5]": (("request", "controlnet_units"), [5]),
    "controlnet_units a string": (("request", "controlnet_units"), "x"),
    "model 5": (("request", "model"), 5),
    "model outside models/": (("request", "model"), "../outside_model"),
    "model an absolute path": (("request", "model"), "/etc"),
    "model a Hub repo id": (("request", "model"), "evil-org/x"),
    "steps true": (("request", "steps"), True),
    "init_image not an image": (("request", "init_image"), "data:image/png;base64,AAAA"),
    "request a list": (("request",), [1]),
    "prompt a lone surrogate": (("request", "prompt"), "\ud800"),
    "sampler a marker": (("request", "sampler_name"), MARKER),
    "width 13": (("request", "width"), 13),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_damaged_recipes_are_refused_by_reproduce(api, genuine, name):
    image, recipe = genuine
    path, value = DAMAGED[name]
    text = json.dumps(recipe_with(recipe, path, value), allow_nan=True)
    response = api.post("/studio/v1/reproduce", json={"image": png_with(image, {"studio": text})})
    assert_handled(response, Tally("png metadata (reported)"))
    assert response.status_code == 422


def test_a_recipe_nested_100000_deep_is_refused(api, genuine):
    image, _ = genuine
    deep = '{"request": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post("/studio/v1/reproduce", json={"image": png_with(image, {"studio": deep})})
    assert_handled(response, Tally("png metadata (reported)"))
    assert response.status_code == 422


def test_the_genuine_png_still_reproduces(api, genuine):
    image, recipe = genuine
    response = api.post("/studio/v1/reproduce", json={"image": png_with(image, {"studio": json.dumps(recipe)})})
    assert response.status_code == 200
    again = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    assert list(again.convert("RGB").getdata()) == list(image.convert("RGB").getdata())


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(), st.text(max_size=20), st.just(MARKER)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=12)
RECIPE_FIELDS = ["seed", "steps", "width", "height", "batch_size", "n_iter", "sampler_name", "model", "cfg_scale",
                 "init_image", "mask", "controlnet_units", "prompt", "denoising_strength"]


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(RECIPE_FIELDS), value=JSON_VALUES, parameters=st.text(max_size=300))
def test_fuzzed_recipes_and_infotexts_never_break_the_server(api, genuine, field, value, parameters):
    image, recipe = genuine
    text = json.dumps(recipe_with(recipe, ("request", field), value), allow_nan=True)
    encoded = png_with(image, {"studio": text, "parameters": parameters})
    tally = Tally("png metadata (hypothesis)")
    info = api.post("/sdapi/v1/png-info", json={"image": encoded})
    assert_handled(info, tally)
    assert info.status_code == 200
    if field in ("model", "init_image", "mask", "controlnet_units", "sampler_name"):  # others run the model: sample less
        assert_handled(api.post("/studio/v1/reproduce", json={"image": encoded}), tally)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(recipe=JSON_VALUES, parameters=st.text(max_size=2000))
def test_the_ui_png_reader_gives_fields_or_a_clear_error(tmp_path_factory, genuine, recipe, parameters):
    image, _ = genuine
    path = Path(tmp_path_factory.mktemp("png")) / "hostile.png"
    path.write_bytes(base64.b64decode(png_with(image, {"studio": json.dumps(recipe, allow_nan=True),
                                                       "parameters": parameters})))
    tally = Tally("png metadata (hypothesis)")
    try:
        info = read_generation_info(path)
    except StudioError:
        tally.tried(True)
        return
    handled = isinstance(info["fields"], dict)
    tally.tried(handled)
    assert handled
