"""Start-up (issue 26 §4): the entry points set OMP_WAIT_POLICY=PASSIVE before torch is imported
(unless the user set it), and a command imports only what it needs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

# Runs an entry point in a fresh interpreter and reports, as JSON on the last line: the
# OMP_WAIT_POLICY the process had when `torch` was first imported (a meta-path hook watches for
# it), the value at the end, and which heavy packages the command imported.
PROBE = r"""
import json, os, runpy, sys
seen = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "torch" not in seen:
            seen["torch"] = os.environ.get("OMP_WAIT_POLICY")
        return None
sys.meta_path.insert(0, Watch())
entry, argv = sys.argv[1], sys.argv[2:]
sys.argv = [entry, *argv]
try:
    if entry == "studio":
        runpy.run_module("studio", run_name="__main__")
    else:
        runpy.run_path(entry, run_name="__main__")
except SystemExit:
    pass
heavy = [m for m in ("torch", "diffusers", "transformers", "gradio", "fastapi") if m in sys.modules]
print(json.dumps({"at_torch_import": seen.get("torch", "not imported"),
                  "at_end": os.environ.get("OMP_WAIT_POLICY"), "imported": heavy}))
"""


def _probe(tmp_path: Path, entry: str, *argv: str, policy: str | None = None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    env.update(PYTHONPATH=str(PROJECT), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", PROBE, entry, *argv], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cli_sets_passive_waiting_before_torch_loads(tmp_path: Path) -> None:
    # `samplers` imports the sampler registry, hence torch: the variable must already be there.
    report = _probe(tmp_path, "studio", "samplers", "--models-dir", str(tmp_path / "models"),
                    "--extensions-dir", str(tmp_path / "extensions"))
    assert report["at_torch_import"] == "PASSIVE"
    assert report["at_end"] == "PASSIVE"


def test_a_policy_the_user_set_is_kept(tmp_path: Path) -> None:
    report = _probe(tmp_path, "studio", "samplers", "--models-dir", str(tmp_path / "models"),
                    "--extensions-dir", str(tmp_path / "extensions"), policy="ACTIVE")
    assert report["at_torch_import"] == "ACTIVE"


def test_app_sets_passive_waiting(tmp_path: Path) -> None:
    report = _probe(tmp_path, "app.py", "--help")  # argparse exits after the entry point ran
    assert report["at_end"] == "PASSIVE"


@pytest.mark.parametrize("command", ["models", "networks"])
def test_listings_import_no_torch_diffusers_or_gradio(tmp_path: Path, command: str) -> None:
    report = _probe(tmp_path, "studio", command, "--models-dir", str(tmp_path / "models"))
    assert report["imported"] == []
    assert report["at_torch_import"] == "not imported"


def test_help_imports_no_heavy_package(tmp_path: Path) -> None:
    assert _probe(tmp_path, "studio", "generate", "--help")["imported"] == []
