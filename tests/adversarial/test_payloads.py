"""Hostile API bodies: the cases the attack report found as 500s, then hypothesis over the schema."""
from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.adversarial.conftest import MARKER, Tally, assert_handled

API = "/sdapi/v1"
FAST = {"prompt": "a red circle on a blue background", "steps": 2, "width": 64, "height": 64, "seed": 1,
        "sampler_name": "Euler"}


def b64(image: Image.Image, kind: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return base64.b64encode(buffer.getvalue()).decode()


def raw(api, path: str, text: str):
    return api.post(path, content=text, headers={"Content-Type": "application/json"})


# ---------------------------------------------------------------------------------------------
# The report's 500s, one by one: each is a 4xx naming the field (or runs, for images that convert).

RAW_BODIES = {
    "NaN in an integer field": '{"steps": NaN}',
    "Infinity in an integer field": '{"steps": Infinity, "prompt": "x"}',
    "-Infinity in a size": '{"width": -Infinity}',
    "NaN as cfg_scale": '{"cfg_scale": NaN}',
    "a huge exponent as seed": '{"seed": 1e400}',
    "a lone surrogate in the prompt": '{"prompt": "\\ud800 and more"}',
    "a lone surrogate in the negative prompt": '{"negative_prompt": "\\udfff"}',
    "a boolean as steps": '{"steps": true}',
    "a boolean as width": '{"width": false}',
    "an array as body": '[1, 2, 3]',
    "a string as body": '"hello"',
    "nested 100,000 deep": '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a truncated body": '{"prompt": "a red',
    "batch larger than a job may hold": '{"batch_size": 8, "n_iter": 100, "steps": 1}',
    "an unknown sampler": '{"sampler_name": "' + MARKER + '"}',
    "a model title outside models/": '{"override_settings": {"sd_model_checkpoint": "../outside_model"}}',
    "an absolute model path": '{"override_settings": {"sd_model_checkpoint": "/etc/passwd"}}',
    "a Hub repo id": '{"override_settings": {"sd_model_checkpoint": "evil-org/x"}}',
    "a hash alone that matches nothing": '{"override_settings": {"sd_model_checkpoint": "[deadbeef00]"}}',
    "a non-string model title": '{"override_settings": {"sd_model_checkpoint": 5}}',
    "restore_faces without its files": '{"restore_faces": true}',
    "an unknown style": '{"styles": ["' + MARKER + '"]}',
    "an unknown script": '{"script_name": "' + MARKER + '"}',
    "a control threshold of Infinity": json.dumps({"alwayson_scripts": {"controlnet": {"args": [
        {"module": "canny", "threshold_a": "Infinity", "image": ""}]}}}).replace('"Infinity"', "Infinity"),
    "a ControlNet unit that is a number": '{"alwayson_scripts": {"controlnet": {"args": [5]}}}',
}


@pytest.mark.parametrize("name", list(RAW_BODIES))
def test_reported_txt2img_bodies_are_refused_with_a_reason(api, name):
    response = raw(api, f"{API}/txt2img", RAW_BODIES[name])
    assert_handled(response, Tally("api payloads (reported)"))
    assert 400 <= response.status_code < 500
    assert MARKER not in response.text or f"'{MARKER}'" in response.text  # echoed only as quoted data


def init_body(**changes: Any) -> dict[str, Any]:
    return {**FAST, "init_images": [b64(Image.new("RGB", (64, 64), (200, 40, 40)))], "denoising_strength": 0.5,
            **changes}


GREY = Image.new("L", (64, 64), 50)
RGBA_GREY = Image.new("RGBA", (64, 64), (100, 100, 100, 255))
WHITE = Image.new("L", (64, 64), 255)

IMG2IMG_BODIES = {
    "a data URL without a comma": init_body(init_images=["data:image/png;base64"]),
    "a data URL of text": init_body(init_images=["data:text/plain;base64," + base64.b64encode(b"hello").decode()]),
    "an empty init image": init_body(init_images=[""]),
    "no init image": init_body(init_images=[]),
    "a mask all grey 50": init_body(mask=b64(GREY)),
    "an RGBA mask grey 100": init_body(mask=b64(RGBA_GREY)),
    "a white mask inverted": init_body(mask=b64(WHITE), inpainting_mask_invert=1),
    "a 12000x12000 PNG": init_body(init_images=[b64(Image.new("1", (12000, 12000)))]),
    "a mask that is text": init_body(mask="bm90IGFuIGltYWdl"),
    "inpainting_mask_invert 2": init_body(mask=b64(WHITE), inpainting_mask_invert=2),
}


@pytest.mark.parametrize("name", list(IMG2IMG_BODIES))
def test_reported_img2img_bodies_are_refused_with_a_reason(api, name):
    response = api.post(f"{API}/img2img", json=IMG2IMG_BODIES[name])
    assert_handled(response, Tally("api payloads (reported)"))
    assert 400 <= response.status_code < 500


def float_image() -> Image.Image:
    return Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64), mode="F")


@pytest.mark.parametrize("kind", ["CMYK JPEG", "float TIFF", "16-bit PNG", "palette PNG", "1-bit PNG"])
def test_unusual_image_modes_convert_on_input_and_save(api, kind):
    image = {
        "CMYK JPEG": (Image.new("CMYK", (64, 64), (0, 200, 200, 0)), "JPEG"),
        "float TIFF": (float_image(), "TIFF"),
        "16-bit PNG": (Image.new("I;16", (64, 64), 30000), "PNG"),
        "palette PNG": (Image.new("RGB", (64, 64), (10, 200, 10)).convert("P"), "PNG"),
        "1-bit PNG": (Image.new("1", (64, 64), 1), "PNG"),
    }[kind]
    response = api.post(f"{API}/img2img", json=init_body(init_images=[b64(*image)], save_images=True))
    assert_handled(response, Tally("api payloads (reported)"))
    assert response.status_code == 200
    saved = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    assert saved.size == (64, 64) and "studio" in saved.info  # the recipe (with the input) was saved


# ---------------------------------------------------------------------------------------------
# Hypothesis over the request schema: valid values stay tiny (so runs are quick), the rest is hostile.

HOSTILE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")),
    st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30), st.just(MARKER), st.just("\ud800"), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
FIELDS = {
    "prompt": st.one_of(st.text(max_size=200), HOSTILE_SCALARS),
    "negative_prompt": st.one_of(st.text(max_size=50), HOSTILE_SCALARS),
    "steps": st.one_of(st.sampled_from([1, 2]), HOSTILE_SCALARS),
    "cfg_scale": st.one_of(st.sampled_from([1.0, 7.0]), HOSTILE_SCALARS),
    "width": st.one_of(st.just(64), HOSTILE_SCALARS),
    "height": st.one_of(st.just(64), HOSTILE_SCALARS),
    "seed": st.one_of(st.integers(-1, 10), HOSTILE_SCALARS),
    "batch_size": st.one_of(st.just(1), HOSTILE_SCALARS),
    "n_iter": st.one_of(st.just(1), HOSTILE_SCALARS),
    "sampler_name": st.one_of(st.sampled_from(["Euler", "Euler a", "DDIM", "k_euler"]), HOSTILE_SCALARS),
    "scheduler": HOSTILE_SCALARS,
    "styles": HOSTILE_SCALARS,
    "override_settings": st.one_of(HOSTILE_SCALARS, st.fixed_dictionaries(
        {"sd_model_checkpoint": st.one_of(HOSTILE_SCALARS, st.sampled_from(["../x", "/etc", "a/b", "[00000000]"]))})),
    "alwayson_scripts": st.one_of(HOSTILE_SCALARS, st.fixed_dictionaries({"controlnet": st.one_of(
        HOSTILE_SCALARS, st.fixed_dictionaries({"args": st.lists(st.one_of(HOSTILE_SCALARS, st.fixed_dictionaries({
            "module": st.one_of(st.sampled_from(["canny", "none", "scribble"]), HOSTILE_SCALARS),
            "weight": HOSTILE_SCALARS, "threshold_a": HOSTILE_SCALARS, "guidance_start": HOSTILE_SCALARS,
            "image": st.one_of(st.just(""), HOSTILE_SCALARS), "resize_mode": HOSTILE_SCALARS,
            "control_mode": HOSTILE_SCALARS})), max_size=4)}))})),
}
BODIES = st.fixed_dictionaries({}, optional=FIELDS)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def dumps(body: Any) -> str:
    return json.dumps(body, allow_nan=True)  # NaN/Infinity as JSON's common extension, as attackers send


@FUZZ
@given(body=BODIES)
def test_fuzzed_txt2img_bodies_never_break_the_server(api, body):
    assert_handled(raw(api, f"{API}/txt2img", dumps({**{"steps": 1, "width": 64, "height": 64}, **body})),
                   Tally("api payloads (hypothesis)"))


IMG_FIELDS = {
    "init_images": st.one_of(HOSTILE_SCALARS, st.lists(st.one_of(HOSTILE_SCALARS, st.just(b64(Image.new("RGB", (64, 64))))),
                                                        max_size=2)),
    "mask": st.one_of(HOSTILE_SCALARS, st.sampled_from([b64(GREY), b64(WHITE), b64(RGBA_GREY)])),
    "denoising_strength": st.one_of(st.just(0.5), HOSTILE_SCALARS),
    "resize_mode": st.one_of(st.sampled_from([0, 1, 2, 3]), HOSTILE_SCALARS),
    "mask_blur": st.one_of(st.just(4), HOSTILE_SCALARS),
    "inpainting_fill": st.one_of(st.sampled_from([0, 1, 2, 3]), HOSTILE_SCALARS),
    "inpaint_full_res": HOSTILE_SCALARS,
    "inpaint_full_res_padding": st.one_of(st.just(8), HOSTILE_SCALARS),
    "inpainting_mask_invert": HOSTILE_SCALARS,
}


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=st.fixed_dictionaries({}, optional={**IMG_FIELDS, "steps": FIELDS["steps"], "seed": FIELDS["seed"]}))
def test_fuzzed_img2img_bodies_never_break_the_server(api, body):
    assert_handled(raw(api, f"{API}/img2img", dumps({**{"steps": 1, "width": 64, "height": 64}, **body})),
                   Tally("api payloads (hypothesis)"))


def test_the_server_still_generates_after_the_fuzzing(api):
    response = api.post(f"{API}/txt2img", json=FAST)
    assert response.status_code == 200 and len(response.json()["images"]) == 1
