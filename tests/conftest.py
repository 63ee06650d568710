"""Shared fixtures. Everything runs offline on the CPU with real (tiny) pipelines."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# The suite runs servers, Ray replicas and CLI subprocesses beside itself on few cores: OpenMP threads
# that spin while waiting steal CPU from the others (measured 2.5x CPU on the CLI under load).
# Waiting passively changes no result, only who gets the CPU. Subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from studio.checkpoints.devices import configure_threads  # noqa: E402
from studio.checkpoints.manager import ModelManager  # noqa: E402
from studio.generation.engine import Engine  # noqa: E402
from studio.settings import Settings  # noqa: E402

configure_threads()  # the same thread count as the app and the CLI: results match bit for bit


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        models_dir=tmp_path / "models",
        outputs_dir=tmp_path / "outputs",
        extensions_dir=tmp_path / "extensions",
        cache_dir=tmp_path / "cache",
        styles_file=tmp_path / "styles.csv",
    )


@pytest.fixture(scope="session")
def shared_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("studio")
    return Settings(models_dir=root / "models", outputs_dir=root / "outputs",
                    extensions_dir=root / "extensions", cache_dir=root / "cache",
                    styles_file=root / "styles.csv")


@pytest.fixture(scope="session")
def engine(shared_settings: Settings) -> Engine:
    """One engine on the embedded default model for the whole session (loading is the slow part)."""
    models = ModelManager(shared_settings)
    models.current()
    return Engine(models)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (tests/browser/conftest.py), shared by every test that drives the UI."""
    from tests.browser.conftest import launched_browser

    yield from launched_browser()


AUTH_USER, AUTH_PASSWORD = "alice", "long-secret"


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory):
    """`python -m studio serve --auth alice:long-secret`, shared by the flag and the browser login tests
    (neither changes it; a start costs a Python, torch and model load)."""
    from tests.browser.conftest import started_server

    with started_server(tmp_path_factory.mktemp("auth"), ["--auth", f"{AUTH_USER}:{AUTH_PASSWORD}"]) as server:
        yield server


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module whose images are compared only with each other: on a CPU
    shared with other work a second thread only contends."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
