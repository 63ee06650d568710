"""The command line as a user meets it: bad input is one line and exit 2, --out takes every image
(scripts too), and every flag of every command has a help line (issues 24 §6, 25 item 18)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from PIL import Image

from studio.cli.main import build_parser
from tests.support.cli_in_process import refused_in_process


def run_cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_an_unknown_sampler_is_one_line_and_exit_2(tmp_path, capsys):
    code, stderr = refused_in_process(capsys, "generate", "--prompt", "x", "--sampler-name", "Nope", "--steps", "1",
                                      "--out", str(tmp_path / "out"), "--models-dir", str(tmp_path / "models"))
    assert code == 2
    assert stderr.strip().count("\n") == 0, stderr
    assert "unknown sampler 'Nope'" in stderr and "Euler a" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_script_run_writes_into_out(tmp_path):
    out = tmp_path / "out"
    args = [1, "11, 12", [], 0, "", [], 0, "", [], True, False, False, False, False, False, False, 0, False]
    done = run_cli("generate", "--prompt", "a red circle", "--steps", "2", "--width", "64", "--height", "64",
                   "--sampler-name", "Euler", "--out", str(out), "--models-dir", str(tmp_path / "models"),
                   "--outputs-dir", str(tmp_path / "outputs"),
                   "--script-name", "X/Y/Z plot", "--script-args", json.dumps(args), cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.splitlines() if line.endswith(".png")]
    files = sorted(out.glob("*.png"))
    assert len(files) == 3 and sorted(map(str, files)) == sorted(printed)  # the grid and its two cells
    assert max(Image.open(f).width for f in files) > 64  # the grid is among them
    assert not list((tmp_path / "outputs").rglob("*.png")) and not (tmp_path / "outputs" / "txt2img-grids").exists()


def test_help_names_serve_and_every_flag_has_a_line():
    done = run_cli("--help")
    assert done.returncode == 0 and "serve" in done.stdout and "python -m studio serve --help" in done.stdout
    serve_help = run_cli("serve", "--help").stdout
    assert "--port" in serve_help and "port to listen on" in serve_help
    missing = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                missing += [f"{command} {'/'.join(a.option_strings)}" for a in sub._actions
                            if a.option_strings and not (a.help and a.help.strip()) and a.help != argparse.SUPPRESS]
    assert missing == []
