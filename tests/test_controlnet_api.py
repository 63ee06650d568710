"""sd-webui-controlnet's routes over HTTP: control_types, settings, detect (with version, model_list,
module_list), units beyond 3 (`control_net_unit_count`), and ControlNet with hires fix."""
from __future__ import annotations

import argparse
import json
from typing import Iterator

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from studio.cli.settings_flags import add_settings_flags, settings_from_args
from studio.records.infotext import parse_infotext
from studio.service.container import Services, build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.support.base64_png import b64, decode

API = "/sdapi/v1"
UNITS = 4  # this server's control_net_unit_count




def shapes(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (30, 40, 200))
    ImageDraw.Draw(image).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(230, 30, 30))
    return image


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Services:
    root = tmp_path_factory.mktemp("controlnet-api")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", styles_file=root / "styles.csv", control_net_unit_count=UNITS)
    return build_services(settings)


@pytest.fixture(scope="module")
def client(services: Services) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(build_api(services, AccessPolicy()))
    with TestClient(app) as test_client:
        yield test_client


BASE = {"prompt": "a red square on a blue background", "sampler_name": "Euler", "steps": 3, "cfg_scale": 6,
        "seed": 77, "width": 64, "height": 64}


def canny_unit(**extra) -> dict:
    return {"module": "canny", "model": "controlnet-canny", "image": b64(shapes()), **extra}


def txt2img(client: TestClient, **fields):
    return client.post(f"{API}/txt2img", json={**BASE, **fields})


def test_settings_route_gives_the_unit_count(client):
    assert client.get("/controlnet/settings").json() == {"control_net_unit_count": UNITS}
    assert client.get("/controlnet/version").json() == {"version": 2}


def test_units_beyond_three_run_up_to_the_configured_count(client):
    four = txt2img(client, alwayson_scripts={"controlnet": {"args": [canny_unit(weight=0.25)] * UNITS}})
    assert four.status_code == 200, four.text
    params = parse_infotext(decode(four.json()["images"][0]).info["parameters"])
    assert {f"ControlNet {i}" for i in range(UNITS)} <= set(params)
    five = txt2img(client, alwayson_scripts={"controlnet": {"args": [canny_unit()] * (UNITS + 1)}})
    assert five.status_code == 422
    assert "at most 4 ControlNet units" in five.json()["detail"] and "control_net_unit_count" in five.json()["detail"]


def test_unit_count_flag_and_its_default():
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    assert settings_from_args(parser.parse_args([])).control_net_unit_count == 3
    assert settings_from_args(parser.parse_args(["--control-net-unit-count", "6"])).control_net_unit_count == 6
    with pytest.raises(SystemExit):
        parser.parse_args(["--control-net-unit-count", "11"])


def test_control_types_in_sd_webui_controlnet_shape(client):
    types = client.get("/controlnet/control_types").json()["control_types"]
    assert list(types)[0] == "All"
    for name in ("Canny", "Scribble/Sketch", "OpenPose", "Tile/Blur", "Inpaint", "Shuffle", "Reference", "Depth",
                 "Lineart", "SoftEdge", "NormalMap", "MLSD", "Segmentation", "IP-Adapter"):
        assert set(types[name]) == {"module_list", "model_list", "default_option", "default_model"}, name
        assert types[name]["module_list"][0] == "none" and types[name]["model_list"][0] == "None"
    assert types["Canny"] == {"module_list": ["none", "canny"], "model_list": ["None", "controlnet-canny"],
                              "default_option": "canny", "default_model": "controlnet-canny"}
    assert types["Reference"]["default_option"] == "reference_only" and types["Reference"]["default_model"] == "None"
    assert types["Tile/Blur"]["default_option"] == "tile_resample"
    assert "threshold" in types["All"]["module_list"] and "controlnet-pose" in types["All"]["model_list"]


def test_detect_runs_a_module_at_the_processor_resolution(client):
    answer = client.post("/controlnet/detect", json={
        "controlnet_module": "canny", "controlnet_input_images": [b64(shapes(64)), b64(shapes(32))],
        "controlnet_processor_res": 96, "controlnet_threshold_a": 100, "controlnet_threshold_b": 200})
    assert answer.status_code == 200, answer.text
    assert answer.json()["info"] == "Success"
    images = [np.asarray(decode(text).convert("RGB")) for text in answer.json()["images"]]
    assert [image.shape for image in images] == [(96, 96, 3), (96, 96, 3)]
    assert set(np.unique(images[0])) == {0, 255} and images[0][48, 48].max() == 0  # edges, not the square's inside
    threshold = client.post("/controlnet/detect", json={"controlnet_module": "threshold", "controlnet_processor_res": 64,
                                                         "controlnet_input_images": [b64(shapes(64))]})
    binary = np.asarray(decode(threshold.json()["images"][0]).convert("L"))
    assert binary[32, 32] == 0 and binary[2, 2] == 0 and set(np.unique(binary)) <= {0, 255}


@pytest.mark.parametrize(("body", "message"), [
    ({"controlnet_module": "nope", "controlnet_input_images": ["x"]}, "Module not available"),
    ({"controlnet_module": "canny", "controlnet_input_images": []}, "No image selected"),
    ({"controlnet_module": "canny", "controlnet_input_images": ["x"] * 17}, "at most 16"),
    ({"controlnet_module": "canny", "controlnet_input_images": ["x"], "controlnet_processor_res": 9000},
     "controlnet_processor_res must be between 64 and 2048"),
    ({"controlnet_module": "openpose", "controlnet_input_images": [b64(shapes())]}, "body_pose_model.pth"),
    ({"controlnet_module": "softedge_hed", "controlnet_input_images": [b64(shapes())]}, "ControlNetHED.pth"),
    ({"controlnet_module": "inpaint_only", "controlnet_input_images": [b64(shapes())]}, "inpaint_only needs a mask"),
])
def test_detect_refusals_are_clear(client, body, message):
    answer = client.post("/controlnet/detect", json=body)
    assert answer.status_code == 422 and message in answer.json()["detail"], answer.text


def test_controlnet_with_hires_fix_steers_both_passes(client):
    hires = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.6}
    plain = txt2img(client, **hires)
    controlled = txt2img(client, **hires, alwayson_scripts={"controlnet": {"args": [canny_unit()]}})
    assert plain.status_code == 200 and controlled.status_code == 200, controlled.text
    image = decode(controlled.json()["images"][0])
    assert image.size == (96, 96)
    params = parse_infotext(image.info["parameters"])
    assert params["Hires upscale"] == "1.5" and "Module: canny" in params["ControlNet 0"]
    difference = np.abs(np.asarray(image, dtype=float) - np.asarray(decode(plain.json()["images"][0]), dtype=float))
    assert difference.mean() > 0.5
    info = json.loads(controlled.json()["info"])
    assert info["width"] == 64 and info["height"] == 64


def test_the_controlnet_runs_in_the_hires_pass_at_its_size(client, services):
    """Both passes call the ControlNet: at the first pass's latent size, then at the hires size."""
    assert txt2img(client, alwayson_scripts={"controlnet": {"args": [canny_unit()]}}).status_code == 200
    sizes: list[tuple[int, int]] = []
    net = services.generation.engine.models.current().controlnets["controlnet-canny"]
    handle = net.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))
    try:
        answer = txt2img(client, enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.7,
                         alwayson_scripts={"controlnet": {"args": [canny_unit()]}})
    finally:
        handle.remove()
    assert answer.status_code == 200, answer.text
    side = sizes[0][0]  # the first pass's latent side (64 px over the VAE's factor)
    assert sizes == [(side, side)] * 3 + [(2 * side, 2 * side)] * 2  # 3 base steps, then int(0.7 * 3) at 2x
