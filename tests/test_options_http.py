"""The options store over HTTP: GET/POST /sdapi/v1/options with A1111's keys, config.json, and the
options' effect on the next job (clip skip, file names, output folder, saving) without a restart."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.service.container import Services, build_services
from studio.service.option_keys import PREVIEW_METHODS as KEY_METHODS
from studio.service.options import OptionsService
from studio.settings import Settings
from studio.web.auth import access_policy
from studio.web.mount import build_api
from tests.browser.conftest import free_port
from tests.support.served import served_studio

API = "/sdapi/v1"
JOB = {"prompt": "a red circle, blue sky", "sampler_name": "Euler", "steps": 3, "seed": 77, "width": 64,
       "height": 64, "save_images": True}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, httpx.Client, Path]]:
    root = tmp_path_factory.mktemp("options")
    (root / "config.json").write_text(json.dumps({"sd_checkpoint_cache": 3, "samples_save": True}))  # A1111's file
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", port=free_port(), open_browser=False)
    with served_studio(settings) as (services, client):
        yield services, client, root


def test_get_returns_a1111_keys_that_mean_something_here(served):
    _, client, _ = served
    options = client.get(f"{API}/options").json()
    for key in ("sd_model_checkpoint", "sd_vae", "sd_checkpoint_hash", "CLIP_stop_at_last_layers",
                "live_previews_enable", "show_progress_every_n_steps", "show_progress_type", "samples_save",
                "samples_format", "samples_filename_pattern", "outdir_txt2img_samples", "outdir_img2img_samples"):
        assert key in options, key
    assert options["CLIP_stop_at_last_layers"] == 1 and options["samples_format"] == "png"
    assert "sd_checkpoint_cache" not in options  # kept in the file, not offered as ours


def test_unknown_and_read_only_keys_are_refused_and_nothing_changes(served):
    _, client, root = served
    before = client.get(f"{API}/options").json()
    response = client.post(f"{API}/options", json={"CLIP_stop_at_last_layers": 3, "sd_checkpoint_cache": 2,
                                                   "not_a_key": 1, "sd_checkpoint_hash": "deadbeef"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "not_a_key" in detail and "sd_checkpoint_cache" in detail and "read-only" in detail and "sd_checkpoint_hash" in detail
    assert client.get(f"{API}/options").json() == before


def test_bad_values_are_refused_naming_the_key(served):
    _, client, _ = served
    for key, value, said in (("CLIP_stop_at_last_layers", 40, "between 1 and 12"),
                             ("samples_format", "jpg", "png"), ("show_progress_type", "Approx NN", "Approx cheap"),
                             ("samples_filename_pattern", "[seed]-[nope]", "[nope]"),
                             ("samples_filename_pattern", "../[seed]", "/"), ("samples_save", "yes", "bool")):
        response = client.post(f"{API}/options", json={key: value})
        assert response.status_code == 422, (key, value)
        assert key in response.json()["detail"] and said in response.json()["detail"]


def test_a_full_get_can_be_posted_back(served):
    _, client, _ = served
    assert client.post(f"{API}/options", json=client.get(f"{API}/options").json()).status_code == 200


def test_options_apply_to_the_next_job_and_are_saved_in_config_json(served):
    services, client, root = served
    folder = root / "elsewhere"
    response = client.post(f"{API}/options", json={"CLIP_stop_at_last_layers": 2, "outdir_txt2img_samples": str(folder),
                                                   "samples_filename_pattern": "[seed]-[prompt_words]-[steps]-[width]x[height]"})
    assert response.status_code == 200, response.text
    saved = json.loads((root / "config.json").read_text())
    assert saved["CLIP_stop_at_last_layers"] == 2 and saved["sd_checkpoint_cache"] == 3  # A1111's own key kept
    assert OptionsService(services.settings).get("samples_filename_pattern").startswith("[seed]-")  # a restart reads it

    info = json.loads(client.post(f"{API}/txt2img", json=JOB).json()["info"])
    assert "Clip skip: 2" in info["infotexts"][0]
    files = sorted(folder.glob("*/*.png"))
    assert [f.name for f in files] == ["00000-77-a red circle blue sky-3-64x64.png"]

    explicit = json.loads(client.post(f"{API}/txt2img", json={**JOB, "override_settings": {"CLIP_stop_at_last_layers": 3}}).json()["info"])
    assert "Clip skip: 3" in explicit["infotexts"][0]  # a request's own clip skip wins

    client.post(f"{API}/options", json={"samples_save": False})
    client.post(f"{API}/txt2img", json=JOB)
    assert len(list(folder.glob("*/*.png"))) == 2  # not saved any more
    client.post(f"{API}/options", json={"samples_save": True, "CLIP_stop_at_last_layers": 1,
                                        "outdir_txt2img_samples": str(root / "outputs" / "txt2img-images"),
                                        "samples_filename_pattern": ""})
    client.post(f"{API}/txt2img", json=JOB)
    names = [p.name for p in (root / "outputs" / "txt2img-images").glob("*/*.png")]
    assert any(re.fullmatch(r"\d{5}-77\.png", name) for name in names)  # the default again: NNNNN-seed.png


def test_live_preview_options_apply_without_restart(served):
    services, client, _ = served
    client.post(f"{API}/options", json={"live_previews_enable": False})
    assert services.options.preview_every() == 0
    client.post(f"{API}/options", json={"live_previews_enable": True, "show_progress_every_n_steps": 2,
                                        "show_progress_type": "Full"})
    assert services.options.preview_every() == 2 and services.options.get("show_progress_type") == "Full"


def test_a_shared_server_lets_only_the_operator_change_server_wide_options(tmp_path):
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs", extensions_dir=tmp_path / "ext",
                        host="0.0.0.0", auth=("ann", "pw"))
    app = FastAPI()
    app.include_router(build_api(build_services(settings), access_policy(settings)))
    client = TestClient(app)
    client.auth = ("ann", "pw")
    assert client.get(f"{API}/options").status_code == 200
    refused = client.post(f"{API}/options", json={"CLIP_stop_at_last_layers": 2, "samples_save": False})
    assert refused.status_code == 403
    assert "CLIP_stop_at_last_layers" in refused.json()["detail"] and "operator" in refused.json()["detail"]
    assert client.post(f"{API}/options", json={"sd_vae": "Automatic"}).status_code == 200  # anyone's, as before
    assert not (tmp_path / "config.json").exists()


def test_preview_methods_match_the_engines():
    from studio.generation.previews import PREVIEW_METHODS
    assert KEY_METHODS == PREVIEW_METHODS


def test_control_net_unit_count_is_an_option_that_applies_at_once(tmp_path):
    import base64
    import io

    from PIL import Image
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs", extensions_dir=tmp_path / "ext",
                        cache_dir=tmp_path / "cache", control_net_unit_count=3)
    app = FastAPI()
    app.include_router(build_api(build_services(settings), access_policy(settings)))
    client = TestClient(app)
    assert client.get(f"{API}/options").json()["control_net_unit_count"] == 3  # the flag's value
    refused = client.post(f"{API}/options", json={"control_net_unit_count": 11})
    assert refused.status_code == 422 and "control_net_unit_count must be between 1 and 10" in refused.json()["detail"]
    assert client.post(f"{API}/options", json={"control_net_unit_count": 1}).status_code == 200
    assert client.get(f"{API}/options").json()["control_net_unit_count"] == 1
    assert client.get("/controlnet/settings").json() == {"control_net_unit_count": 1}
    assert json.loads((tmp_path / "config.json").read_text())["control_net_unit_count"] == 1
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, "PNG")
    unit = {"image": base64.b64encode(buffer.getvalue()).decode(), "module": "canny", "model": "None"}
    body = {"prompt": "a red square", "steps": 1, "width": 64, "height": 64,
            "alwayson_scripts": {"controlnet": {"args": [unit, unit]}}}
    over = client.post(f"{API}/txt2img", json=body)
    assert over.status_code == 422 and "at most 1 ControlNet units (control_net_unit_count" in over.json()["detail"]
