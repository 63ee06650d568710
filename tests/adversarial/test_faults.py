"""Faults and hostile extensions: a full disk, an outputs folder that cannot be written, extensions
that hang or exit while loading. Each is a clear refusal; nothing is left half-written; the studio
keeps starting and serving."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.records import storage
from studio.service.container import build_services
from studio.service.extensions.manager import ExtensionManager
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.adversarial.conftest import Tally, assert_handled

API = "/sdapi/v1"
FAST = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 9, "save_images": True}
HANGING = Path(__file__).resolve().parents[1] / "fixtures" / "hanging_extensions"


def files_in(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()} if folder.exists() else set()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_disk_that_refuses_the_write_is_a_clear_refusal_and_leaves_nothing(api, adversary_root, monkeypatch, code):
    outputs = adversary_root / "outputs"
    before = files_in(outputs)

    def refuse(*args, **kwargs):
        raise OSError(code, "refused by the test")

    monkeypatch.setattr(storage.os, "link", refuse)
    response = api.post(f"{API}/txt2img", json=FAST)
    assert_handled(response, Tally("faults"))
    assert response.status_code == 422 and "could not save the image" in response.json()["detail"]
    assert files_in(outputs) == before  # no orphan PNG, companion or temp file
    monkeypatch.undo()
    assert api.post(f"{API}/txt2img", json=FAST).status_code == 200  # and it saves again afterwards


def test_an_outputs_folder_below_a_file_is_a_clear_refusal(tmp_path):
    (tmp_path / "not-a-folder").write_text("x")
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "not-a-folder" / "outputs",
                        extensions_dir=tmp_path / "extensions", cache_dir=tmp_path / "cache")
    app = FastAPI()
    app.include_router(build_api(build_services(settings), AccessPolicy()))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(f"{API}/txt2img", json=FAST)
        assert_handled(response, Tally("faults"))
        assert response.status_code == 422 and "could not save" in response.json()["detail"]
        assert client.post(f"{API}/txt2img", json={**FAST, "save_images": False}).status_code == 200


def test_extensions_that_hang_or_exit_while_loading_leave_the_studio_working(tmp_path):
    extensions = tmp_path / "extensions"
    shutil.copytree(HANGING, extensions)
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs", extensions_dir=extensions,
                        cache_dir=tmp_path / "cache")
    manager = ExtensionManager(settings, load_timeout=1.0).load_all()
    statuses = {row["folder"]: row["status"] for row in manager.rows()}
    tally = Tally("extensions")
    for name in ("loops_at_import", "sleeps_in_register", "exits_in_register"):
        skipped = statuses[name].startswith("failed")
        tally.tried(skipped)
        assert skipped
    plain = build_services(settings.replace(extensions_dir=tmp_path / "none"))
    studio = build_services(settings, engine=plain.generation.engine, extensions=manager)  # the good extensions' hooks still run
    job = studio.generation.submit(studio_request())
    tally.tried(len(job.images) == 1)
    assert len(job.images) == 1


def studio_request():
    from studio.request import GenerationRequest

    return GenerationRequest(prompt="a red circle", steps=1, width=64, height=64, seed=3)
