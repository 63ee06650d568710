"""Saving outputs: every finished image is saved at once (SIGTERM keeps them), all-or-nothing per
image (PNG + companions), clear errors for a full or unwritable outputs folder, stale temps removed."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from studio.records import storage
from studio.records.storage import SaveError
from studio.settings import PROJECT_DIR

RED = Image.new("RGB", (16, 16), (255, 0, 0))
MASK = Image.new("L", (16, 16), 255)


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_a_png_and_its_companions_are_saved_together(tmp_path):
    path = storage.save_png(RED, tmp_path, 7, "a prompt\nSteps: 1", {"request": {}}, companions={"mask": MASK})
    assert files(tmp_path) == ["00000-7-mask.png", "00000-7.png"]
    assert storage.read_png_text(path)["parameters"] == "a prompt\nSteps: 1"


def test_disk_full_while_writing_a_companion_leaves_nothing(tmp_path, monkeypatch):
    real_save = Image.Image.save
    calls = []

    def save(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 2:  # the main PNG is written, the mask is not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(SaveError, match="could not save the image in .*: the disk is full"):
        storage.save_png(RED, tmp_path, 7, "text", None, companions={"mask": MASK})
    assert files(tmp_path) == []  # no orphan PNG, no temp


def test_disk_full_when_linking_leaves_nothing(tmp_path, monkeypatch):
    def link(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "link", link)
    with pytest.raises(SaveError, match="the disk is full"):
        storage.save_png(RED, tmp_path, 7, "text")
    assert files(tmp_path) == []


def test_an_outputs_dir_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SaveError, match="a part of the path is a file, not a folder"):
        storage.save_png(RED, blocker / "txt2img-images", 7, "text")


def test_generating_into_an_unwritable_outputs_dir_is_a_studio_error(tmp_path, settings):
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.request import GenerationRequest
    from studio.service.jobs import generate

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    engine = Engine(ModelManager(settings))
    request = GenerationRequest(prompt="a red circle", steps=1, width=64, height=64, seed=1)
    with pytest.raises(SaveError, match="could not save"):
        generate(request, engine, settings, directory=blocker / "out")


def test_stale_temp_files_are_removed_and_fresh_ones_kept(tmp_path):
    folder = tmp_path / "txt2img-images" / "2026-01-01"
    folder.mkdir(parents=True)
    stale, fresh, output = folder / ".saving-abc.png", folder / ".saving-def.png", folder / "00000-1.png"
    for path in (stale, fresh, output):
        path.write_bytes(b"x")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    assert storage.remove_stale_temps(tmp_path) == 1
    assert files(folder) == [".saving-def.png", "00000-1.png"]


def _wait_for_png(folder: Path, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob("0*.png")):
        assert process.poll() is None, "the process ended before saving an image"
        assert time.monotonic() < deadline, "no image was saved in time"
        time.sleep(0.1)


def test_sigterm_during_a_cli_run_keeps_the_finished_images(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "generate", "--prompt", "a red circle", "--steps", "20", "--n-iter", "10",
         "--seed", "3", "--out", str(out), "--models-dir", str(tmp_path / "models"), "--safe-mode"],
        cwd=PROJECT_DIR, stdout=(tmp_path / "stdout").open("w"), stderr=(tmp_path / "stderr").open("w"))
    _wait_for_png(out, process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=600)
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    saved = [name for name in files(out) if not name.startswith(".")]
    assert 1 <= len(saved) < 10, (saved, stderr)  # the first is kept, the run stopped early
    assert files(out) == saved  # no temp left behind
    assert "interrupted" in stderr and "Traceback" not in stderr
    for name in saved:
        assert storage.read_png_text(out / name)["parameters"].startswith("a red circle")
        assert str(out / name) in stdout


SERVER_LIKE = """
import sys, threading
from pathlib import Path
from studio.service.container import build_services
from studio.request import GenerationRequest
from studio.settings import Settings
from studio.service.shutdown import ServiceJobs, install_shutdown_handler

root = Path(sys.argv[1])
studio = build_services(Settings(models_dir=root / "models", outputs_dir=root / "outputs", safe_mode=True,
                                cache_dir=root / "cache", extensions_dir=root / "extensions"))
install_shutdown_handler(ServiceJobs(studio.generation))
request = GenerationRequest(prompt="a red circle", steps=20, n_iter=10, width=64, height=64, seed=3)
threading.Thread(target=studio.generation.submit, args=(request,), kwargs={"directory": root / "out"}, daemon=True).start()
threading.Event().wait()  # the main thread idles, as the server's does
"""


def test_sigterm_while_a_worker_thread_runs_a_job_saves_and_exits_cleanly(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", SERVER_LIKE, str(tmp_path)], cwd=PROJECT_DIR,
                               stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("w"),
                               env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)})
    _wait_for_png(tmp_path / "out", process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=600)
    stderr = (tmp_path / "stderr").read_text()
    assert process.returncode == 0, stderr
    saved = files(tmp_path / "out")
    assert 1 <= len(saved) < 10 and not any(name.startswith(".") for name in saved), saved
