"""Loading builds the weights in the target dtype: no float32 copy of a bf16 model in memory.

A reduced SD 1.x model (its own small config folder, random weights) is written as an A1111
single file in float32 — the worst case, a user's fp32 checkpoint — and loaded in bfloat16 in a
fresh process. The kernel's peak-RSS mark (VmHWM, reset right before the load) is compared with
what the load left resident: no sampling, no timing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from benchmarks.workloads import random_single_file
from studio.checkpoints import single_file
from studio.checkpoints.catalog import DEFAULT_MODEL_DIR, ModelEntry
from studio.checkpoints.loading import estimated_parameter_count
from studio.settings import PROJECT_DIR

REDUCED = {
    "unet": {"block_out_channels": [64, 128, 256, 256]},
    "vae": {"block_out_channels": [32, 64, 64, 64]},
    "text_encoder": {"num_hidden_layers": 2},
}


def _reduced_configs(root: Path) -> Path:
    """studio/configs/sd15 with smaller UNet/VAE channel counts and a 2-layer text encoder."""
    folder = root / "configs" / "sd15-reduced"
    shutil.copytree(single_file.SHIPPED_CONFIGS / "sd15", folder)
    for part, changes in REDUCED.items():
        config_file = folder / part / "config.json"
        config = json.loads(config_file.read_text())
        config.update(changes)
        config_file.write_text(json.dumps(config, indent=1))
    return folder


DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from studio.checkpoints import single_file
    single_file.SHIPPED_CONFIGS = Path(sys.argv[2])  # the reduced config is the one that matches
    from benchmarks.load_memory import measure
    print(json.dumps(measure(Path(sys.argv[1]), "bfloat16")))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_fp32_single_file_loads_in_bf16_without_a_float32_copy(tmp_path: Path) -> None:
    configs = _reduced_configs(tmp_path)
    checkpoint = random_single_file(configs, tmp_path / "models" / "Stable-diffusion" / "reduced.safetensors",
                                    torch.float32)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", DRIVER, str(checkpoint), str(configs.parent)],
                            capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])

    assert measured["dtype"] == "bfloat16"
    # The model is big enough that its weights dominate what the load adds (~180 MB in bf16).
    assert measured["weights_mb"] > 150
    # A float32 copy would add 2x the bf16 weights on top; reading tensor by tensor adds ~nothing.
    assert measured["load_delta_ratio"] <= 1.2, measured


def test_parameter_count_is_read_from_headers_without_loading() -> None:
    from diffusers import UNet2DConditionModel

    entry = ModelEntry("default", "default", str(DEFAULT_MODEL_DIR))
    unet = UNet2DConditionModel.from_pretrained(DEFAULT_MODEL_DIR, subfolder="unet")
    assert estimated_parameter_count(entry) == sum(p.numel() for p in unet.parameters())
