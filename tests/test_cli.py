import subprocess
import sys

from studio.generation.samplers import SAMPLERS
from studio.records.pnginfo import read_generation_info
from tests.support.cli_in_process import refused_in_process


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=300, cwd=cwd)

def test_generate_writes_pngs_with_infotext_and_prints_paths(tmp_path):
    out = tmp_path / "out"
    done = run_cli("generate", "--prompt", "a green triangle", "--negative-prompt", "red", "--sampler", "DDIM",
                   "--steps", "3", "--cfg-scale", "6", "--seed", "77", "--batch-size", "2", "--out", str(out),
                   "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    paths = [line for line in done.stdout.splitlines() if line.endswith(".png")]
    assert len(paths) == 2
    assert sorted(p.name for p in out.iterdir()) == ["00000-77.png", "00001-78.png"]
    info = read_generation_info(__import__("pathlib").Path(paths[1]))
    assert info["params"]["Prompt"] == "a green triangle"
    assert info["params"]["Negative prompt"] == "red"
    assert info["params"]["Sampler"] == "DDIM" and info["params"]["Seed"] == "78"
    assert info["params"]["Steps"] == "3" and info["params"]["CFG scale"] == "6"


def test_generate_rejects_bad_input_with_a_message(tmp_path, capsys):
    code, stderr = refused_in_process(capsys, "generate", "--prompt", "x", "--width", "70", "--out", str(tmp_path))
    assert code == 2
    assert "width must be a multiple of 8" in stderr
    assert "Traceback" not in stderr


def test_samplers_and_models_list_the_registries(tmp_path):
    samplers = run_cli("samplers", "--safe-mode")
    assert [line.split("\t")[0] for line in samplers.stdout.splitlines()] == list(SAMPLERS)
    with_extensions = run_cli("samplers")  # the shipped extra_sampler extension adds one
    assert "DPM++ 3M SDE Karras" in with_extensions.stdout
    models = run_cli("models", "--models-dir", str(tmp_path))
    assert models.stdout.splitlines()[0].startswith("studio-default-64px\tdefault")


def test_preset_fills_fields_and_explicit_flags_win(tmp_path, capsys):
    out = tmp_path / "out"
    done = run_cli("generate", "--prompt", "a red square", "--preset", "draft", "--steps", "3", "--seed", "5",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    params = read_generation_info(next(out.glob("*.png")))["params"]
    assert params["Sampler"] == "DPM++ 2M Karras"  # from the preset
    assert params["Steps"] == "3"  # the flag wins over the preset's 10
    code, stderr = refused_in_process(capsys, "generate", "--prompt", "x", "--preset", "nope", "--out", str(out))
    assert code == 2 and "unknown preset 'nope'" in stderr


def test_every_shipped_preset_is_a_valid_request():
    from studio.service.presets import load_presets

    presets = load_presets()
    assert {"default-64px", "draft"} <= set(presets)
