"""The artist-workflow fields over HTTP, as A1111 clients send them: styles and /prompt-styles,
CLIP_stop_at_last_layers, script_name/script_args (X/Y/Z plot) and /skip."""
from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from studio.service.container import build_services
from studio.settings import PROJECT_DIR, Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api

API = "/sdapi/v1"
BASE = {"prompt": "a red circle on a blue background", "steps": 3, "width": 64, "height": 64, "seed": 21,
        "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("workflow")
    shutil.copy(PROJECT_DIR / "presets" / "styles.csv", root / "styles.csv")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=PROJECT_DIR / "extensions",
                        cache_dir=root / "cache", styles_file=root / "styles.csv")
    studio = build_services(settings)
    app = FastAPI()
    app.include_router(build_api(studio, AccessPolicy()))
    app.state.models_dir = str(settings.models_dir)
    with TestClient(app) as test_client:
        yield test_client


def pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.int16)


def test_prompt_styles_are_listed_and_applied(client):
    styles = client.get(f"{API}/prompt-styles").json()
    assert {"name", "prompt", "negative_prompt"} <= set(styles[0])
    watercolor = next(style for style in styles if style["name"] == "Watercolor")
    response = client.post(f"{API}/txt2img", json={**BASE, "styles": ["Watercolor"]})
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    assert info["styles"] == ["Watercolor"]
    expanded = watercolor["prompt"].replace("{prompt}", BASE["prompt"])
    assert info["prompt"] == expanded and "Styles:" in info["infotexts"][0]
    unknown = client.post(f"{API}/txt2img", json={**BASE, "styles": ["No such style"]})
    assert unknown.status_code == 422 and "No such style" in unknown.json()["detail"]


def test_clip_stop_at_last_layers_is_clip_skip(client):
    plain = client.post(f"{API}/txt2img", json=BASE).json()
    skipped = client.post(f"{API}/txt2img", json={**BASE, "override_settings": {"CLIP_stop_at_last_layers": 2}})
    assert skipped.status_code == 200, skipped.text
    info = json.loads(skipped.json()["info"])
    assert info["clip_skip"] == 2 and "Clip skip: 2" in info["infotexts"][0]
    assert np.abs(pixels(plain["images"][0]) - pixels(skipped.json()["images"][0])).mean() > 0.5
    bad = client.post(f"{API}/txt2img", json={**BASE, "override_settings": {"CLIP_stop_at_last_layers": 99}})
    assert bad.status_code == 422 and "clip_skip" in bad.json()["detail"]


def test_script_name_runs_the_xyz_plot(client):
    args = [1, "11, 12", [], 0, "", [], 0, "", [], True, False, False, False, False, False, False, 0, False]
    response = client.post(f"{API}/txt2img", json={**BASE, "script_name": "x/y/z plot", "script_args": args})
    assert response.status_code == 200, response.text
    grid, *cells = response.json()["images"]
    assert len(cells) == 2 and Image.open(io.BytesIO(base64.b64decode(grid))).width > 64
    unknown = client.post(f"{API}/txt2img", json={**BASE, "script_name": "Loopback"})
    assert unknown.status_code == 422 and "Loopback" in unknown.json()["detail"]


def test_skip_answers_when_idle_and_progress_reports_it(client):
    assert client.post(f"{API}/skip").status_code == 200
    assert client.get(f"{API}/progress").json()["state"]["skipped"] is False


def test_samplers_once_refused_on_the_default_model_now_run_and_list_no_reason(client):
    """Issue 25 item 1: PLMS, Heun, LMS, DPM2 a … run as k-diffusion samplers on the zero-SNR model."""
    listed = {item["name"]: item["options"] for item in client.get(f"{API}/samplers").json()}
    assert "unavailable" not in listed["Euler"] and "unavailable" not in listed["PLMS"]
    for sampler in ("PLMS", "DPM2 a Karras", "Restart"):
        ran = client.post(f"{API}/txt2img", json={"prompt": "a red circle", "steps": 3, "width": 64, "height": 64,
                                                  "seed": 1, "sampler_name": sampler})
        assert ran.status_code == 200, ran.text


def test_a_controlnet_that_does_not_fit_the_model_is_a_422_naming_the_mismatch(client):
    """Issue 18 item 11: an SD 2.x-sized ControlNet on the 64-px SD 1.x-style default model."""
    from studio.checkpoints.catalog import DEFAULT_MODEL_DIR

    models = Path(client.app.state.models_dir) / "ControlNet" / "sd2-canny"
    models.mkdir(parents=True, exist_ok=True)
    config = json.loads((DEFAULT_MODEL_DIR / "controlnet-canny" / "config.json").read_text())
    (models / "config.json").write_text(json.dumps({**config, "cross_attention_dim": 1024}))
    edges = Image.new("RGB", (64, 64))
    buffer = io.BytesIO()
    edges.save(buffer, format="PNG")
    unit = {"module": "none", "model": "sd2-canny", "image": base64.b64encode(buffer.getvalue()).decode()}
    response = client.post(f"{API}/txt2img", json={**BASE, "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    assert response.status_code == 422 and "cross-attention width is 1024" in response.json()["detail"]
    listed = client.get("/controlnet/model_list").json()
    assert listed["model_detail"]["sd2-canny"]["fits"] is False
    assert listed["model_detail"]["controlnet-canny"]["fits"] is True


def test_after_skipping_the_first_iteration_the_info_lists_line_up_with_the_images(client):
    """A1111's /skip drops the iteration being sampled; the answer's seeds, prompts and infotexts
    describe the images it returns (iterations 1 and 2: seeds 22 and 23), not the ones it planned."""
    import threading
    import time

    answer: dict = {}
    request = {**BASE, "steps": 150, "n_iter": 3}
    worker = threading.Thread(target=lambda: answer.update(response=client.post(f"{API}/txt2img", json=request)))
    worker.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = client.get(f"{API}/progress").json()["state"]
        if state["job_count"] and state["job_no"] == 0 and state["sampling_step"] >= 1:
            break
        time.sleep(0.01)
    assert client.post(f"{API}/skip").status_code == 200
    worker.join(600)
    response = answer["response"]
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    seeds = [int(text.split("Seed: ", 1)[1].split(",", 1)[0]) for text in info["infotexts"]]
    assert len(response.json()["images"]) == 2 and seeds == [22, 23]
    assert info["all_seeds"] == seeds and info["seed"] == 22
    assert len(info["all_prompts"]) == len(info["all_subseeds"]) == 2


def test_dynamic_prompts_pick_several_variants_with_n_dollar_dollar(client):
    """sd-dynamic-prompts' {2$$a|b|c}: two different variants joined by ", " (a custom separator in
    the middle), the same ones again for the same seed."""
    import re

    def prompt_of(text: str, seed: int) -> str:
        response = client.post(f"{API}/txt2img", json={**BASE, "steps": 1, "prompt": text, "seed": seed})
        assert response.status_code == 200, response.text
        return json.loads(response.json()["info"])["all_prompts"][0]

    picked = prompt_of("a {2$$red|green|blue} circle", 5)
    found = re.fullmatch(r"a (red|green|blue), (red|green|blue) circle", picked)
    assert found and found.group(1) != found.group(2)
    assert prompt_of("a {2$$red|green|blue} circle", 5) == picked
    joined = prompt_of("a {3$$ and $$red|green|blue} circle", 6)
    assert re.fullmatch(r"a (red|green|blue) and (red|green|blue) and (red|green|blue) circle", joined)
    assert {"red", "green", "blue"} <= set(joined.split())


def test_and_composes_subprompts_over_http(client):
    both = client.post(f"{API}/txt2img", json={**BASE, "prompt": f"{BASE['prompt']} :1.2 AND a green square :0.8"})
    plain = client.post(f"{API}/txt2img", json=BASE)
    assert both.status_code == 200, both.text
    assert np.abs(pixels(both.json()["images"][0]) - pixels(plain.json()["images"][0])).mean() > 1
    assert json.loads(both.json()["info"])["infotexts"][0].startswith(f"{BASE['prompt']} :1.2 AND a green square :0.8\n")
    many = client.post(f"{API}/txt2img", json={**BASE, "prompt": " AND ".join(["a cat"] * 9)})
    assert many.status_code == 422 and "subprompts joined by AND" in many.json()["detail"]
