"""A1111's system routes over HTTP: scripts, script-info, extensions, memory, unload/reload-checkpoint,
face-restorers, realesrgan-models, hypernetworks, sd-modules, interrogate, cmd-flags, and
server-stop/-restart/-kill (the local operator only)."""
from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from studio.service.container import Services, build_services
from studio.settings import Settings
from studio.web.auth import access_policy
from studio.web.mount import build_api
from tests.browser.conftest import Server, free_port
from tests.support.served import served_studio

API = "/sdapi/v1"


def png_b64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, httpx.Client, Path]]:
    root = tmp_path_factory.mktemp("system")
    (root / "models" / "hypernetworks").mkdir(parents=True)
    (root / "models" / "hypernetworks" / "anime_3.pt").write_bytes(b"not read by a listing")
    (root / "models" / "RealESRGAN").mkdir()
    (root / "models" / "RealESRGAN" / "RealESRGAN_x4plus.pth").write_bytes(b"listed, not loaded")
    (root / "models" / "VAE").mkdir()
    (root / "models" / "VAE" / "kl-f8.safetensors").write_bytes(b"listed")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs",  # the repository's extensions
                        cache_dir=root / "cache", port=free_port(), open_browser=False)
    with served_studio(settings) as (services, client):
        yield services, client, root


def test_scripts_and_script_info_name_the_scripts_a_request_may_use(served):
    _, client, _ = served
    scripts = client.get(f"{API}/scripts").json()
    assert "x/y/z plot" in scripts["txt2img"] and "prompt matrix" in scripts["txt2img"]
    assert scripts["img2img"] == scripts["txt2img"]
    info = client.get(f"{API}/script-info").json()
    assert {"name": "x/y/z plot", "is_alwayson": False, "is_img2img": False, "args": []} in info
    assert any(item["is_img2img"] for item in info)


def test_extensions_in_a1111_shape(served):
    _, client, _ = served
    items = client.get(f"{API}/extensions").json()
    assert items and set(items[0]) == {"name", "remote", "branch", "commit_hash", "version", "commit_date", "enabled"}
    assert any(item["name"] == "xyz_plot" and item["enabled"] is True for item in items)


def test_memory_reports_ram_and_says_cuda_is_unavailable_on_cpu(served):
    _, client, _ = served
    memory = client.get(f"{API}/memory").json()
    assert memory["ram"]["total"] > memory["ram"]["used"] > 0 and memory["ram"]["free"] > 0
    assert memory["cuda"] == {"error": "unavailable"} or memory["cuda"]["system"]["total"] > 0


def test_unload_and_reload_checkpoint(served):
    services, client, _ = served
    title = client.get(f"{API}/options").json()["sd_model_checkpoint"]  # loads the model
    assert services.models.facts() is not None
    assert client.post(f"{API}/unload-checkpoint").status_code == 200
    assert services.models.facts() is None
    assert client.post(f"{API}/reload-checkpoint").status_code == 200
    assert services.models.facts() is not None and client.get(f"{API}/options").json()["sd_model_checkpoint"] == title
    client.post(f"{API}/unload-checkpoint")
    job = client.post(f"{API}/txt2img", json={"prompt": "red", "steps": 2, "width": 64, "height": 64, "seed": 1})
    assert job.status_code == 200 and len(job.json()["images"]) == 1  # the next job loads it again


def test_lists_in_a1111_shapes(served):
    _, client, root = served
    assert client.get(f"{API}/face-restorers").json() == []
    assert client.get(f"{API}/realesrgan-models").json() == [
        {"name": "R-ESRGAN 4x+", "path": str(root / "models" / "RealESRGAN" / "RealESRGAN_x4plus.pth"), "scale": 4}]
    assert client.get(f"{API}/hypernetworks").json() == [
        {"name": "anime_3", "path": str(root / "models" / "hypernetworks" / "anime_3.pt")}]
    assert client.get(f"{API}/sd-modules").json() == [
        {"model_name": "kl-f8.safetensors", "filename": str(root / "models" / "VAE" / "kl-f8.safetensors")}]


def test_a_hypernetwork_tag_is_refused_clearly(served):
    _, client, _ = served
    response = client.post(f"{API}/txt2img", json={"prompt": "a cat <hypernet:anime_3:1>", "steps": 2,
                                                   "width": 64, "height": 64})
    assert response.status_code == 422 and "hypernetworks" in response.json()["detail"]


def test_interrogate_is_refused_naming_the_missing_model(served):
    _, client, _ = served
    response = client.post(f"{API}/interrogate", json={"image": png_b64(), "model": "clip"})
    assert response.status_code == 501 and "models/interrogate/" in response.json()["detail"]
    assert client.post(f"{API}/interrogate", json={"image": png_b64(), "model": "nope"}).status_code == 422
    assert client.post(f"{API}/interrogate", json={"image": "not base64!", "model": "clip"}).status_code == 422


def test_cmd_flags_name_the_model_folders(served):
    _, client, root = served
    flags = client.get(f"{API}/cmd-flags").json()
    models = root / "models"
    assert flags["lora_dir"] == str(models / "Lora") and flags["embeddings_dir"] == str(models / "embeddings")
    assert flags["ckpt_dir"] == str(models / "Stable-diffusion") and flags["vae_dir"] == str(models / "VAE")
    assert flags["hypernetwork_dir"] == str(models / "hypernetworks")


def test_a_shared_server_refuses_process_control(tmp_path):
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs", extensions_dir=tmp_path / "ext",
                        host="0.0.0.0", auth=("ann", "pw"))
    app = FastAPI()
    app.include_router(build_api(build_services(settings), access_policy(settings)))
    client = TestClient(app)
    client.auth = ("ann", "pw")
    for name in ("server-stop", "server-restart", "server-kill"):
        response = client.post(f"{API}/{name}")
        assert response.status_code == 403 and "operator" in response.json()["detail"], name


def wait_exit(server: Server, timeout: float = 60) -> int | None:
    try:
        return server.process.wait(timeout=timeout)
    except Exception:
        return None


def starts(server: Server, at_least: int = 0) -> int:
    """How many times the server printed its start line (waiting up to 120 s for `at_least`: the line
    follows the moment the port answers)."""
    deadline = time.monotonic() + 120
    while True:
        count = (server.root / "server.log").read_text().count("Diffusion Studio running on")
        if count >= at_least or time.monotonic() > deadline or server.process.poll() is not None:
            return count
        time.sleep(0.5)


def test_the_local_operator_restarts_then_stops_the_server(tmp_path):
    server = Server(tmp_path)
    try:
        server.wait_ready(timeout=600)
        assert starts(server, at_least=1) == 1
        assert httpx.post(f"{server.url}sdapi/v1/server-restart", timeout=30).status_code == 200
        deadline = time.monotonic() + 180
        while starts(server) < 2 and time.monotonic() < deadline and server.process.poll() is None:
            time.sleep(1)
        server.wait_ready(timeout=600)
        assert starts(server, at_least=2) == 2 and server.process.poll() is None  # the same process, started afresh
        assert httpx.post(f"{server.url}sdapi/v1/server-stop", timeout=30).status_code == 200
        assert wait_exit(server) == 0
    finally:
        server.stop()


def test_the_local_operator_kills_the_server(tmp_path):
    server = Server(tmp_path)
    try:
        server.wait_ready(timeout=600)
        assert httpx.post(f"{server.url}sdapi/v1/server-kill", timeout=30).status_code == 200
        assert wait_exit(server) == 0
    finally:
        server.stop()
