"""Error texts name files relative to their folder, never by the server's absolute path (issue 22, item 20)."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.service.container import build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from studio.web.paths_in_errors import folder_names, relative_paths
from tests.adversarial.conftest import Tally


def test_a_save_error_over_http_names_the_folder_not_the_server_path(tmp_path: Path):
    outputs = tmp_path / "outputs"
    outputs.write_text("a file where the outputs folder should be")  # every save fails
    services = build_services(Settings(models_dir=tmp_path / "models", outputs_dir=outputs, cache_dir=tmp_path / "cache",
                                       extensions_dir=tmp_path / "extensions"))
    app = FastAPI()
    app.include_router(build_api(services, AccessPolicy()))
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/sdapi/v1/txt2img", json={"prompt": "a red circle", "steps": 1, "width": 64, "height": 64,
                                                        "save_images": True})
    detail = answer.json().get("detail", "")
    Tally("error texts").tried(str(tmp_path) not in answer.text)
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert str(tmp_path) not in answer.text and "outputs" in detail, detail


@pytest.mark.parametrize("message, expected", [
    ("could not load /srv/s/models/Lora/x.safetensors: bad", "could not load models/Lora/x.safetensors: bad"),
    ("could not save the image in /srv/s/outputs/txt2img-images/2026", "could not save the image in outputs/txt2img-images/2026"),
    ("[Errno 13] Permission denied: '/etc/studio/secret.png'", "[Errno 13] Permission denied: '…/secret.png'"),
    ("/srv/s/models", "models"),
    ("a/b and 1/2 stay as they are", "a/b and 1/2 stay as they are"),
])
def test_paths_become_relative_to_their_folder(message, expected):
    folders = folder_names({"models": Path("/srv/s/models"), "outputs": Path("/srv/s/outputs")})
    assert relative_paths(message, folders) == expected


@pytest.fixture
def ui_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.ui import errors
    monkeypatch.setattr(errors, "HIDDEN_FOLDERS", set())
    errors.hide_folders({"models": Path("/srv/s/models"), "outputs": Path("/srv/s/outputs")})


def test_ui_error_texts_name_files_relative_to_their_folder(ui_folders):
    import gradio as gr

    from studio.errors import ModelError
    from studio.ui.errors import error_message, user_errors
    from studio.ui.images import not_an_image_text

    assert error_message(ModelError("could not load /srv/s/models/Lora/x.safetensors: bad")) == \
        "could not load models/Lora/x.safetensors: bad"  # the text under the gallery
    assert error_message(KeyError("/srv/s/outputs/a/b.png")) == "KeyError: 'outputs/a/b.png'"  # a bug's text too
    with pytest.raises(gr.Error) as raised, user_errors():  # the toast
        raise ValueError("cannot write /srv/s/outputs/txt2img-images/x.png")
    assert raised.value.message == "cannot write outputs/txt2img-images/x.png"
    text = not_an_image_text("x.png", OSError("broken data stream when reading image file /tmp/gradio/ab12/x.png"))
    assert "/tmp/gradio" not in text and text.endswith("…/x.png)")


def test_a_save_error_in_the_ui_names_the_folder_not_the_server_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from studio.request import GenerationRequest
    from studio.service.folders import named_folders
    from studio.ui import errors

    outputs = tmp_path / "outputs"
    outputs.write_text("a file where the outputs folder should be")  # every save fails
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=outputs, cache_dir=tmp_path / "cache",
                        extensions_dir=tmp_path / "extensions")
    services = build_services(settings)
    monkeypatch.setattr(errors, "HIDDEN_FOLDERS", set())
    errors.hide_folders(named_folders(settings))  # what build_ui does
    request = GenerationRequest(prompt="a red circle", steps=1, width=64, height=64)
    with pytest.raises(Exception) as raised:
        services.generation.submit(request, save=True)
    message = errors.error_message(raised.value)  # the text shown under the gallery
    assert str(tmp_path) in str(raised.value)  # the core's text has the absolute path
    assert str(tmp_path) not in message and "outputs" in message, message
