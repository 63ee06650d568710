"""A model single file with a tensor missing (issue 22 §16): switching to it through /options is a
422 naming the missing weights (it was a bare 500 from placing meta tensors), and the model loaded
before stays loaded and working."""
from __future__ import annotations

import shutil

from fastapi import FastAPI
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from studio.checkpoints import single_file
from studio.service.container import build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.adversarial.conftest import Tally, assert_handled
from tests.support.tiny_sdxl import write_tiny_refiner_single_file

API = "/sdapi/v1"
MISSING = "conditioner.embedders.0.model.text_projection"


def test_a_single_file_missing_a_tensor_is_a_422_naming_it(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    shutil.copytree(single_file.SHIPPED_CONFIGS, configs)
    monkeypatch.setattr(single_file, "SHIPPED_CONFIGS", configs)
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs",
                        extensions_dir=tmp_path / "ext", cache_dir=tmp_path / "cache")
    whole = write_tiny_refiner_single_file(tmp_path / "whole.safetensors", configs)
    state = load_file(str(whole))
    assert state.pop(MISSING) is not None  # the SDXL text encoder's projection, as in the report
    (settings.models_dir / "Stable-diffusion").mkdir(parents=True)
    save_file(state, str(settings.models_dir / "Stable-diffusion" / "no-projection.safetensors"))
    services = build_services(settings)
    app = FastAPI()
    app.include_router(build_api(services, AccessPolicy()))
    with TestClient(app, raise_server_exceptions=False) as api:
        before = api.get(f"{API}/options").json()["sd_model_checkpoint"]
        title = next(m["title"] for m in api.get(f"{API}/sd-models").json() if "no-projection" in m["title"])
        response = api.post(f"{API}/options", json={"sd_model_checkpoint": title})
        assert_handled(response, Tally("model files"))
        assert response.status_code == 422, response.text
        assert "text_projection" in response.json()["detail"] and "missing" in response.json()["detail"]
        assert api.get(f"{API}/options").json()["sd_model_checkpoint"] == before
        generated = api.post(f"{API}/txt2img", json={"prompt": "a red circle", "steps": 1, "width": 64, "height": 64})
        assert generated.status_code == 200, generated.text
