"""Hostile extensions (issue 22 §18): register() raising KeyboardInterrupt or SystemExit does not
stop start-up (the extension is marked failed), and a before_generate hook that hangs gets a time
limit per call, counts as the extension's failure, and is disabled after MAX_FAILURES: requests
complete, the queue is free again, and /interrupt answers."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.service.container import build_services
from studio.service.extensions.loading import MAX_FAILURES
from studio.service.extensions.manager import ExtensionManager
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.adversarial.conftest import Tally, assert_handled

API = "/sdapi/v1"
FAST = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 3, "save_images": False}
EXTENSIONS = {
    "interrupts_in_register": "def register(api):\n    raise KeyboardInterrupt\n",
    "exits_in_register": "import sys\n\ndef register(api):\n    sys.exit(3)\n",
    "hangs_in_hook": """
        import threading
        import time

        def register(api):
            api.on_before_generate(hang)

        def hang(request):
            while True:  # a Python loop: stopped once the time limit passes
                time.sleep(0.05)
        """,
    "blocks_in_hook": """
        import threading

        def register(api):
            api.on_before_generate(block)

        def block(request):
            threading.Event().wait(3600)  # blocked in C: cannot be stopped, must not hold the request
        """,
    "interrupts_in_hook": "def register(api):\n    api.on_before_generate(stop)\n\ndef stop(request):\n    raise KeyboardInterrupt\n",
}


def write_extensions(folder: Path) -> None:
    for name, code in EXTENSIONS.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(textwrap.dedent(code))
        (folder / name / "extension.toml").write_text(f'name = "{name}"\nversion = "1"\napi_version = "1.0"\n')


def test_hostile_registers_and_hanging_hooks_never_stop_the_studio(tmp_path):
    write_extensions(tmp_path / "extensions")
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs",
                        extensions_dir=tmp_path / "extensions", cache_dir=tmp_path / "cache")
    tally = Tally("extensions")
    try:
        manager = ExtensionManager(settings, load_timeout=10.0, hook_timeout=1.0).load_all()
    except (KeyboardInterrupt, SystemExit) as error:
        pytest.fail(f"an extension's register() stopped start-up: {type(error).__name__}")
    status = {row["folder"]: row["status"] for row in manager.rows()}
    for name in ("interrupts_in_register", "exits_in_register"):
        tally.tried(status[name].startswith("failed"))
        assert status[name].startswith("failed")  # marked failed, start-up went on
    assert "KeyboardInterrupt" in status["interrupts_in_register"]
    services = build_services(settings, extensions=manager)
    app = FastAPI()
    app.include_router(build_api(services, AccessPolicy()))
    with TestClient(app, raise_server_exceptions=False) as api:
        for _ in range(MAX_FAILURES):  # each hanging hook is stopped after its second; the image is made
            response = api.post(f"{API}/txt2img", json=FAST)
            assert_handled(response, tally)
            assert response.status_code == 200, response.text
            assert len(response.json()["images"]) == 1
        assert api.post(f"{API}/interrupt").status_code == 200
        status = {row["folder"]: row["status"] for row in manager.rows()}
        for name in ("hangs_in_hook", "blocks_in_hook", "interrupts_in_hook"):
            disabled = status[name].startswith("disabled for this session")
            tally.tried(disabled)
            assert disabled, status[name]
        assert "it was stopped (a hook gets 1 s a call)" in status["hangs_in_hook"]
        response = api.post(f"{API}/txt2img", json=FAST)  # the disabled hooks are no longer called
        assert response.status_code == 200
