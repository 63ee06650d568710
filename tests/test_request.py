import pytest

from studio.generation.samplers import SAMPLERS
from studio.request import GenerationRequest, RequestError

VALID = GenerationRequest(prompt="a red circle", width=64, height=64, seed=3)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"width": 65}, "width must be a multiple of 8"),
        ({"height": 100}, "nearest: 96"),
        ({"width": 32}, "width must be between 64 and 2048"),
        ({"height": 4096}, "height must be between 64 and 2048"),
        ({"steps": 0}, "steps must be between 1 and 150"),
        ({"steps": 151}, "steps must be between 1 and 150"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"cfg_scale": -1.0}, "cfg_scale must be between 0 and 30"),
        ({"cfg_scale": 31}, "cfg_scale must be between 0 and 30"),
        ({"cfg_scale": "high"}, "cfg_scale must be a number"),
        ({"sampler_name": "Nope"}, "unknown sampler 'Nope'"),
        ({"model": "missing.safetensors"}, "unknown model 'missing.safetensors'"),
        ({"batch_size": 0}, "batch_size must be between 1 and 8"),
        ({"n_iter": 0}, "n_iter must be between 1 and 100"),
        ({"seed": -2}, "seed must be between -1"),
        ({"prompt": 5}, "prompt must be a str"),
    ],
)
def test_each_rule_rejects_with_a_specific_message(changes, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(")):
        VALID.replace(**changes).validate(samplers=SAMPLERS, models=["studio-default-64px"])


def test_valid_request_passes_and_defaults_follow_a1111():
    assert VALID.validate(samplers=SAMPLERS) is VALID
    defaults = GenerationRequest()
    assert (defaults.steps, defaults.cfg_scale, defaults.seed, defaults.sampler_name) == (20, 7.0, -1, "Euler a")


def test_json_round_trip_and_unknown_keys_ignored():
    request = VALID.replace(negative_prompt="blurry, text", n_iter=2, batch_size=3)
    assert GenerationRequest.from_json(request.to_json()) == request
    assert GenerationRequest.from_dict({**request.to_dict(), "not_a_field": True}) == request


@pytest.mark.parametrize("changes, message", [
    ({"steps": True}, "steps must be a whole number"),
    ({"cfg_scale": True}, "cfg_scale must be a number"),
    ({"seed": False}, "seed must be a whole number"),
    ({"batch_size": True}, "batch_size must be a whole number"),
    ({"width": True}, "width must be a whole number"),
])
def test_booleans_are_refused_for_numbers(changes, message):
    with pytest.raises(RequestError, match=message):
        GenerationRequest(prompt="x", **changes).validate()


@pytest.mark.parametrize("changes, message", [
    ({"weight": True}, "weight must be a number"),
    ({"threshold_a": True}, "threshold_a must be a number"),
    ({"control_mode": True}, "control_mode must be a whole number"),
    ({"pixel_perfect": "yes"}, "pixel_perfect must be a bool"),
    ({"enabled": 1}, "enabled must be a bool"),
])
def test_control_units_refuse_wrong_types(changes, message):
    from PIL import Image

    from studio.request import ControlUnit

    unit = ControlUnit(image=Image.new("RGB", (64, 64)), **changes)
    with pytest.raises(RequestError, match=message):
        GenerationRequest(prompt="x", controlnet_units=(unit,)).validate()
