"""The command line of folder batches and scripts: img2img-batch, extras-batch, generate --script-name."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tests.test_cli import run_cli


def pictures(folder: Path, colours: dict[str, str], size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in colours.items():
        Image.new("RGB", (size, size), colour).save(folder / name)


def test_img2img_batch_reads_a_folder_relative_to_the_working_directory(tmp_path):
    pictures(tmp_path / "in", {"a.png": "red", "b.png": "blue"}, 64)
    done = run_cli("img2img-batch", "--input-dir", "in", "--output-dir", "out", "--prompt", "a circle", "--steps", "2",
                   "--seed", "4", "--denoising-strength", "0.5", "--models-dir", str(tmp_path / "models"),
                   "--outputs-dir", str(tmp_path / "outputs"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.splitlines()]
    assert len(paths) == 2 and all(path.parent == tmp_path / "out" for path in paths)
    assert "Denoising strength: 0.5" in Image.open(paths[0]).text["parameters"]
    missing = run_cli("img2img-batch", "--input-dir", "nowhere", "--prompt", "x", cwd=tmp_path)
    assert missing.returncode == 2 and "input_dir:" in missing.stderr and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_extras_batch_upscales_a_folder(tmp_path):
    pictures(tmp_path / "in", {"a.png": "green", "b.png": "yellow"}, 16)
    done = run_cli("extras-batch", "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"),
                   "--upscaler-1", "Nearest", "--upscaling-resize", "3", "--models-dir", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    assert [Image.open(line).size for line in done.stdout.splitlines()] == [(48, 48), (48, 48)]


def test_generate_runs_a_script_by_name_with_its_script_args(tmp_path):
    lines = 'a cat\n--prompt "a dog" --seed 8'
    done = run_cli("generate", "--steps", "2", "--seed", "3", "--script-name", "Prompts from file or textbox",
                   "--script-args", json.dumps([False, False, "start", lines]),
                   "--models-dir", str(tmp_path / "models"), "--outputs-dir", str(tmp_path / "outputs"))
    assert done.returncode == 0, done.stderr
    texts = [Image.open(line).text["parameters"] for line in done.stdout.splitlines()]
    assert texts[0].startswith("a cat\n") and "Seed: 3," in texts[0]
    assert texts[1].startswith("a dog\n") and "Seed: 8," in texts[1]
    bad = run_cli("generate", "--script-name", "Prompt matrix", "--script-args", "{", "--prompt", "a|b")
    assert bad.returncode == 2 and "--script-args must be a JSON list" in bad.stderr
