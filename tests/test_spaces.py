"""Deploying as a Hugging Face Space: the repo starts with no arguments when SPACE_ID is set."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import tomllib

from studio.cli.spaces import space_arguments
from studio.request import GenerationRequest
from studio.service.zerogpu import MAX_SECONDS, MIN_SECONDS, GpuEngine, gpu_seconds, gpu_wrapper
from studio.settings import PROJECT_DIR
from tests.browser.conftest import free_port


def test_space_arguments_only_on_spaces():
    assert space_arguments(["--port", "9"], {}) == ["--port", "9"]
    on_space = space_arguments([], {"SPACE_ID": "me/studio"})
    assert on_space[:3] == ["--listen", "--no-browser", "--hosted-demo"] and "--no-api" in on_space
    assert "--no-api" not in space_arguments([], {"SPACE_ID": "me/studio", "STUDIO_API_AUTH": "u:p"})


def test_requirements_txt_is_derived_from_pyproject():
    deps = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines == deps
    front = (PROJECT_DIR / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front and "sdk_version:" in front


def start_space(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (tmp_path / "space.log").open("w")
    process = subprocess.Popen([sys.executable, "app.py", "--models-dir", str(tmp_path / "models")], cwd=PROJECT_DIR,
                               env={**os.environ, "SPACE_ID": "me/studio", "GRADIO_SERVER_PORT": str(port), **env},
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "space.log").read_text()[-2000:]
        try:
            if httpx.get(url + "/", timeout=10).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise TimeoutError("the Space did not start")


@pytest.mark.slow
def test_a_space_starts_with_no_arguments_ui_open_api_off(tmp_path):
    process, url = start_space(tmp_path)
    try:
        assert httpx.get(url + "/config", timeout=60).status_code == 200  # the demo's UI needs no login
        assert httpx.get(url + "/sdapi/v1/samplers", timeout=60).status_code == 404  # no secret: no API
    finally:
        process.terminate()
        process.wait(timeout=60)


STUB_SPACES = Path(__file__).parent / "fixtures" / "stub_spaces"


@pytest.mark.slow
def test_a_space_with_an_api_secret_serves_the_api_and_runs_jobs_inside_spaces_gpu(tmp_path):
    """With the `spaces` package (a recording stub that pickles across the call, as ZeroGPU's
    worker does), every job's engine turns run inside spaces.GPU with a duration sized from their
    steps and pixels; ZeroGPU lends the GPU only there."""
    log = tmp_path / "spaces.jsonl"
    process, url = start_space(tmp_path, STUDIO_API_AUTH="bot:long-secret", STUB_SPACES_LOG=str(log),
                               PYTHONPATH=os.pathsep.join([str(STUB_SPACES), os.environ.get("PYTHONPATH", "")]))
    try:
        assert httpx.get(url + "/sdapi/v1/samplers", timeout=60).status_code == 401
        assert httpx.get(url + "/sdapi/v1/samplers", auth=("bot", "long-secret"), timeout=60).status_code == 200
        body = {"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "seed": 1}
        response = httpx.post(url + "/sdapi/v1/txt2img", json=body, auth=("bot", "long-secret"), timeout=600)
        assert response.status_code == 200 and len(response.json()["images"]) == 1
    finally:
        process.terminate()
        process.wait(timeout=60)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"event": "wrapped", "function": "engine_turn"} in events
    assert {"event": "called", "function": "engine_turn", "duration": MIN_SECONDS} in events


def test_gpu_time_grows_with_steps_pixels_images_and_hires(monkeypatch):
    small = GenerationRequest(steps=20, width=512, height=512)
    assert gpu_seconds(small) == MIN_SECONDS  # a small job asks for the minimum
    big = GenerationRequest(steps=40, width=1024, height=1024, n_iter=4)
    assert MIN_SECONDS < gpu_seconds(big) < gpu_seconds(big.replace(enable_hr=True, hr_scale=1.5)) <= MAX_SECONDS
    assert gpu_seconds(big.replace(n_iter=100)) == MAX_SECONDS
    # Only on a Space, and only with the package installed.
    monkeypatch.syspath_prepend(str(STUB_SPACES))
    assert gpu_wrapper({}) is None
    assert gpu_wrapper({"SPACE_ID": "me/studio"}) is not None
    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed
    assert gpu_wrapper({"SPACE_ID": "me/studio"}) is None


def test_engine_turns_on_the_gpu_cross_a_pickle_boundary_and_save_as_usual(engine, shared_settings, monkeypatch,
                                                                          tmp_path):
    """In-process, with the stub: a two-iteration job with per-image prompts runs turn by turn
    through GpuEngine (arguments and results pickled) and gives the pixels of a plain run."""
    import numpy as np

    from studio.service import jobs

    monkeypatch.syspath_prepend(str(STUB_SPACES))
    monkeypatch.setenv("STUB_SPACES_LOG", str(tmp_path / "log.jsonl"))
    runner = GpuEngine(engine, gpu_wrapper({"SPACE_ID": "me/studio"}))
    request = GenerationRequest(prompt="a red circle", steps=2, width=64, height=64, seed=9, n_iter=2)
    prompts = lambda index: (f"a red circle {index}", "", {})  # noqa: E731 (an extension's per-image prompts)
    on_gpu = jobs.generate(request, runner, shared_settings, save=False, image_prompts=prompts)
    plain = jobs.generate(request, engine, shared_settings, save=False, image_prompts=prompts)
    assert [i.seed for i in on_gpu.images] == [9, 10] and "a red circle 1" in on_gpu.images[1].infotext
    for a, b in zip(on_gpu.images, plain.images):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.infotext == b.infotext
    calls = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [c["event"] for c in calls] == ["wrapped", "called"]  # one call: the whole job in one turn here
