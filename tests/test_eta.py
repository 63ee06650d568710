"""A1111's eta: the request's `eta`, else the eta_ddim / eta_ancestral option, reaches DDIM and the
ancestral samplers (their k-diffusion form), changes the image, and is recorded as A1111 records it."""
from __future__ import annotations

import base64
import io
import json
from typing import Iterator

import numpy as np
import pytest
from diffusers import DDIMScheduler, EulerDiscreteScheduler
from fastapi.testclient import TestClient
from PIL import Image

from studio.generation.eta import K_SAMPLER_ETA, SAMPLER_ETA
from studio.generation.kscheduler import KScheduler
from studio.generation.samplers import SAMPLERS, make_scheduler
from studio.records.infotext import params_to_request_fields, parse_infotext, request_params
from studio.request import GenerationRequest, RequestError
from tests.support.served import api_client

CONFIG = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def test_the_eta_table_follows_the_registry():
    for name, spec in SAMPLERS.items():
        assert SAMPLER_ETA.get(name) == K_SAMPLER_ETA.get(spec.k_sampler or ""), name


@pytest.mark.parametrize("name, eta, expected", [
    ("DDIM", None, DDIMScheduler), ("DDIM", 0.0, DDIMScheduler), ("DDIM", 1.0, KScheduler),
    ("Euler a", 1.0, None), ("Euler a", 0.5, KScheduler), ("DPM++ 2M SDE", 0.0, KScheduler),
    ("Euler", 0.5, EulerDiscreteScheduler),  # adds no noise: eta changes nothing
])
def test_an_eta_other_than_the_default_runs_the_k_diffusion_sampler(name, eta, expected):
    scheduler = make_scheduler(name, CONFIG, eta=eta)
    if expected is None:
        assert not isinstance(scheduler, KScheduler)
    else:
        assert isinstance(scheduler, expected)
    if isinstance(scheduler, KScheduler):
        assert scheduler.config.eta == eta


def test_infotext_writes_and_reads_eta_as_a1111():
    ddim = GenerationRequest(prompt="x", sampler_name="DDIM", eta=1.0)
    assert request_params(ddim, "m", "h")["Eta DDIM"] == 1.0
    assert "Eta DDIM" not in request_params(ddim.replace(eta=0.0), "m", "h")
    ancestral = request_params(GenerationRequest(prompt="x", sampler_name="Euler a", eta=0.5), "m", "h")
    assert ancestral["Eta"] == 0.5 and "Eta" not in request_params(ddim.replace(sampler_name="Euler a"), "m", "h")
    text = "a cat\nSteps: 3, Sampler: DDIM, Eta DDIM: 1.0, Seed: 1"
    assert params_to_request_fields(parse_infotext(text))["eta"] == 1.0
    with pytest.raises(RequestError, match="eta"):
        ddim.replace(eta=1.5).validate()


@pytest.fixture(scope="module")
def client(engine, shared_settings) -> Iterator[TestClient]:
    with api_client(shared_settings, engine) as test_client:
        yield test_client


def _run(client: TestClient, **fields) -> tuple[np.ndarray, str]:
    body = {"prompt": "a red ball", "steps": 3, "seed": 4, "width": 64, "height": 64, "sampler_name": "DDIM", **fields}
    answer = client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    return np.asarray(image, dtype=float), json.loads(answer.json()["info"])["infotexts"][0]


def test_eta_reaches_ddim_and_euler_a_over_http(client):
    plain, plain_info = _run(client)
    zero, _ = _run(client, eta=0)
    noisy, info = _run(client, eta=1.0)
    assert np.array_equal(plain, zero) and "Eta" not in plain_info
    assert np.abs(noisy - plain).mean() > 1.0 and "Eta DDIM: 1.0" in info
    ancestral, _ = _run(client, sampler_name="Euler a")
    calm, calm_info = _run(client, sampler_name="Euler a", eta=0)
    assert np.abs(ancestral - calm).mean() > 1.0 and "Eta: 0.0" in calm_info
    assert client.post("/sdapi/v1/txt2img", json={"prompt": "x", "eta": 3}).status_code == 422


def test_the_eta_ddim_option_is_used_when_a_request_sets_none(client):
    noisy, _ = _run(client, eta=1.0)
    assert client.post("/sdapi/v1/options", json={"eta_ddim": 1.0}).status_code == 200
    try:
        assert client.get("/sdapi/v1/options").json()["eta_ddim"] == 1.0
        from_option, info = _run(client)
        assert np.array_equal(from_option, noisy) and "Eta DDIM: 1.0" in info
    finally:
        client.post("/sdapi/v1/options", json={"eta_ddim": 0.0})
    assert client.post("/sdapi/v1/options", json={"eta_ancestral": 2}).status_code == 422
