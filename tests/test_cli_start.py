"""The CLI starts light and fails in one line: no gradio/fastapi/controlnet-aux for listing or
generating, no alarming start-up noise, a start-up failure is one line and a non-zero exit."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from studio.cli import main as cli
from studio.settings import PROJECT_DIR

# diffusers.pipelines.auto_pipeline imports every pipeline family diffusers has (~0.4 s CPU): a known
# family builds its mode pipelines without it (studio.generation.from_pipe)
HEAVY = ("gradio", "fastapi", "uvicorn", "controlnet_aux", "mediapipe", "timm", "cv2", "studio.ui", "studio.web",
         "diffusers.pipelines.auto_pipeline")
NOISE = ("FutureWarning", "torch.jit", "mediapipe", "deprecated", "Overwriting tiny_vit", "Traceback")

PROBE = """
import runpy, sys, atexit
def report():
    print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
atexit.register(report)
sys.argv = ["studio", *sys.argv[1:]]
runpy.run_module("studio", run_name="__main__")
"""


def run_probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          timeout=900, cwd=PROJECT_DIR, env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)})


def test_listing_samplers_imports_no_ui_web_or_detector_and_prints_no_noise():
    done = run_probe("samplers")
    assert done.returncode == 0, done.stderr
    assert "HEAVY:\n" in done.stderr, done.stderr  # none of them imported
    assert not [word for word in NOISE if word in done.stderr], done.stderr
    assert "Euler a\t" in done.stdout


def test_generate_imports_no_ui_web_or_detector(tmp_path):
    done = run_probe("generate", "--prompt", "a red circle", "--steps", "2", "--seed", "1", "--safe-mode",
                     "--out", str(tmp_path), "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    assert "HEAVY:\n" in done.stderr, done.stderr
    assert not [word for word in NOISE if word in done.stderr], done.stderr


def test_the_pose_renderer_still_works_and_imports_controlnet_aux_quietly(recwarn):
    from studio.control.pose import PRESETS, preset, render_pose

    image = render_pose(preset(next(iter(PRESETS)), 64, 64), 64, 64)
    assert image.size == (64, 64) and image.getbbox() is not None
    assert not [w for w in recwarn if "tiny_vit" in str(w.message) or "mediapipe" in str(w.message)]


@pytest.mark.parametrize("error, expected", [
    (ValueError("When localhost is not accessible, a shareable link must be created. Please set share=True"),
     "did not answer Gradio's check of its own address"),
    (OSError("Cannot find empty port in range: 7860-7860."), "OSError: Cannot find empty port"),
])
def test_a_start_up_failure_is_one_line_and_a_non_zero_exit(monkeypatch, capsys, error, expected):
    import studio.cli.serve

    def fail(settings, block=True):
        raise error

    monkeypatch.setattr(studio.cli.serve, "serve", fail)
    monkeypatch.delenv("STUDIO_DEBUG", raising=False)
    assert cli.main(["serve", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the server could not start: ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
