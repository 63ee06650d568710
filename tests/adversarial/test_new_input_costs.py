"""The inputs issues 24-26 added (eta, s_min_uncond, token merging, face restoration, the backend,
interrogate's image), each given hostile values: a 4xx naming the field, in well under a second of the
server's CPU, before any work (no image decoded, no model loaded)."""
from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from typing import Any

import pytest
from PIL import Image

from tests.adversarial.conftest import MARKER, Tally, assert_handled

API = "/sdapi/v1"
FAST = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler"}
TALLY = Tally("new inputs (issues 24-26)")


def _cpu_of(call: Any) -> tuple[Any, float]:
    started = time.process_time()
    result = call()
    return result, time.process_time() - started


def _png_claiming(width: int, height: int) -> str:
    """A 100-byte PNG whose header claims width x height (a decompression bomb's size, no pixels behind it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


def _small_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# name -> (route, body, a word the refusal must contain)
HOSTILE = {
    "eta 1e308": ("txt2img", {**FAST, "eta": 1e308}, "eta"),
    "eta -1": ("txt2img", {**FAST, "eta": -1}, "eta"),
    "eta as text": ("txt2img", {**FAST, "eta": MARKER}, "eta"),
    "s_min_uncond 1e300": ("txt2img", {**FAST, "s_min_uncond": 1e300}, "s_min_uncond"),
    "s_min_uncond -5": ("txt2img", {**FAST, "s_min_uncond": -5}, "s_min_uncond"),
    "token merging 5": ("txt2img", {**FAST, "override_settings": {"token_merging_ratio": 5}}, "token_merging_ratio"),
    "restore_faces as a dict": ("txt2img", {**FAST, "restore_faces": {"a": MARKER}}, "restore_faces"),
    "a face restorer outside models/": ("txt2img", {**FAST, "restore_faces": True, "override_settings": {
        "face_restoration_model": "../../" + MARKER}}, "unknown face restorer"),
    "code_former_weight NaN-like 1e308": ("txt2img", {**FAST, "restore_faces": True, "override_settings": {
        "face_restoration_model": "CodeFormer", "code_former_weight": 1e308}}, "code_former_weight"),
    "an unknown backend": ("txt2img", {**FAST, "override_settings": {"backend": "cuda; " + MARKER}}, "backend"),
    "a backend switch for one request": ("txt2img", {**FAST, "override_settings": {"backend": "openvino"}},
                                         "set the backend option"),
    "Extras GFPGAN visibility 1e9": ("extra-single-image", {"image": _small_png(), "gfpgan_visibility": 1e9},
                                     "gfpgan_visibility"),
    "Extras CodeFormer weight -3": ("extra-single-image", {"image": _small_png(), "codeformer_visibility": 1,
                                                           "codeformer_weight": -3}, "codeformer_weight"),
    "interrogate: a PNG claiming 60000 x 60000": ("interrogate", {"image": _png_claiming(60_000, 60_000),
                                                                  "model": "clip"}, "pixels"),
    "interrogate: not an image": ("interrogate", {"image": base64.b64encode(MARKER.encode()).decode(),
                                                  "model": "clip"}, "image"),
    "interrogate: a model outside models/": ("interrogate", {"image": _small_png(), "model": "../../" + MARKER},
                                             "model"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_values_of_the_new_inputs_are_refused_cheaply_by_name(api, name):
    route, body, word = HOSTILE[name]
    response, cpu = _cpu_of(lambda: api.post(f"{API}/{route}", json=body))
    assert_handled(response, TALLY)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert cpu < 1.0, f"{name} cost {cpu:.2f} s of CPU"
    detail = response.json()["detail"]
    assert word in str(detail), detail


@pytest.mark.parametrize("value", [MARKER, "../openvino", "", 5])
def test_the_backend_option_refuses_anything_but_its_choices(api, value):
    response, cpu = _cpu_of(lambda: api.post(f"{API}/options", json={"backend": value}))
    assert_handled(response, TALLY)
    assert response.status_code == 422 and "backend" in str(response.json()["detail"]), response.text[:300]
    assert cpu < 1.0
    assert api.get(f"{API}/options").json()["backend"] in ("auto", "eager", "openvino")
