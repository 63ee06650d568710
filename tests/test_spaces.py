"""Deploying as a Hugging Face Space: the repo starts with no arguments when SPACE_ID is set."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from studio.settings import PROJECT_DIR
from studio.spaces import space_arguments
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


@pytest.mark.slow
def test_a_space_with_an_api_secret_serves_the_api_behind_it(tmp_path):
    process, url = start_space(tmp_path, STUDIO_API_AUTH="bot:long-secret")
    try:
        assert httpx.get(url + "/sdapi/v1/samplers", timeout=60).status_code == 401
        assert httpx.get(url + "/sdapi/v1/samplers", auth=("bot", "long-secret"), timeout=60).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=60)
