"""Token merging (A1111's token_merging_ratio, through tomesd) and "Negative Guidance minimum sigma"
(s_min_uncond, infotext NGMS): both change the image when on, leave it bit-identical when 0, are
recorded with A1111's keys, and reach the engine from the HTTP API (issue 26 §3)."""
from __future__ import annotations

import json
from typing import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from studio.records.infotext import parse_infotext
from studio.request import GenerationRequest, RequestError
from tests.support.served import api_client

BASE = GenerationRequest(prompt="a red circle on a blue background", negative_prompt="green", sampler_name="Euler",
                         steps=6, seed=11)


def pixels(engine, request: GenerationRequest) -> np.ndarray:
    return np.asarray(engine.run(request).images[0].image.convert("RGB"), dtype=np.int16)


def unet_batches(engine, request: GenerationRequest) -> list[int]:
    unet = engine.models.current().pipe.unet
    batches: list[int] = []
    # conv_in: what the UNet really computes on (a hook on the UNet itself sees the batch before the split)
    handle = unet.conv_in.register_forward_pre_hook(lambda module, args: batches.append(int(args[0].shape[0])))
    try:
        engine.run(request)
    finally:
        handle.remove()
    return batches


def test_zero_leaves_the_image_bit_identical_and_on_changes_it(engine):
    before = pixels(engine, BASE)
    assert np.array_equal(pixels(engine, BASE.replace(token_merging_ratio=0.0, s_min_uncond=0.0)), before)
    merged = pixels(engine, BASE.replace(token_merging_ratio=0.5))
    assert np.abs(merged - before).mean() > 0.5
    assert np.array_equal(pixels(engine, BASE), before)  # the patch is removed after the run


def test_s_min_uncond_skips_the_uncond_pass_on_alternate_low_sigma_steps(engine):
    from studio.generation.samplers import make_scheduler

    scheduler = make_scheduler("Euler", engine.models.current().pipe.scheduler.config)
    scheduler.set_timesteps(6)
    sigmas = scheduler.sigmas[:-1].tolist()  # this zero-SNR schedule starts at ~4096
    threshold = 100.0
    expected = [1 if step % 2 and sigma < threshold else 2 for step, sigma in enumerate(sigmas)]
    assert 1 in expected and expected[0] == 2
    assert unet_batches(engine, BASE) == [2] * 6
    assert unet_batches(engine, BASE.replace(s_min_uncond=threshold)) == expected  # odd low-sigma steps: cond only
    assert unet_batches(engine, BASE.replace(s_min_uncond=0.001)) == [2] * 6  # no sigma below it
    assert np.abs(pixels(engine, BASE.replace(s_min_uncond=threshold)) - pixels(engine, BASE)).mean() > 0.1


def test_infotext_uses_a1111_keys_and_out_of_range_is_refused(engine):
    result = engine.run(BASE.replace(steps=2, token_merging_ratio=0.3, s_min_uncond=2.0))
    from studio.records.recipes import image_infotext

    params = parse_infotext(image_infotext(result, result.images[0]))
    assert params["Token merging ratio"] == "0.3" and params["NGMS"] == "2.0"
    with pytest.raises(RequestError, match="token_merging_ratio"):
        BASE.replace(token_merging_ratio=0.95).validate()


@pytest.fixture(scope="module")
def client(engine, shared_settings) -> Iterator[TestClient]:
    with api_client(shared_settings, engine) as test_client:
        yield test_client


def test_http_takes_a1111s_override_and_field(client):
    body = {"prompt": "a red circle", "seed": 3, "steps": 2, "width": 64, "height": 64,
            "override_settings": {"token_merging_ratio": 0.5}, "s_min_uncond": 1.5}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    params = parse_infotext(json.loads(response.json()["info"])["infotexts"][0])
    assert params["Token merging ratio"] == "0.5" and params["NGMS"] == "1.5"
    bad = client.post("/sdapi/v1/txt2img", json={**body, "override_settings": {"token_merging_ratio": 2}})
    assert bad.status_code == 422 and "token_merging_ratio" in bad.text
