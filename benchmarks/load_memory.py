"""Peak and resident memory of loading one model, measured in a fresh process.

    python -m benchmarks.load_memory PATH [--dtype bfloat16]   -> one JSON line

The peak is the kernel's high-water mark of the process's resident set (VmHWM), reset just
before the load (/proc/self/clear_refs), so no sampling can miss a short spike.
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS


def measure(path: Path, dtype: str, models_dir: Path | None = None) -> dict[str, Any]:
    """Load the single-file checkpoint or diffusers folder at `path` with the studio's loader."""
    import diffusers  # noqa: F401  (the pipeline classes import lazily; pay that before measuring)
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline  # noqa: F401
    from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: F401

    from studio.checkpoints.catalog import ModelEntry
    from studio.checkpoints.loading import load_pipeline
    from studio.settings import Settings

    kind = "single_file" if path.is_file() else "diffusers"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(models_dir=models_dir or Path(tmp) / "models", cache_dir=Path(tmp) / "cache", dtype=dtype)
        gc.collect()
        before = _status_kib("VmRSS")
        _reset_peak()
        pipe = load_pipeline(ModelEntry(path.name, kind, str(path)), settings)
        gc.collect()
        peak, after = _status_kib("VmHWM"), _status_kib("VmRSS")
    weights = sum(p.numel() * p.element_size() for name in ("unet", "vae", "text_encoder", "text_encoder_2")
                  if getattr(pipe, name, None) is not None for p in getattr(pipe, name).parameters())
    return {
        "dtype": str(pipe.unet.dtype).removeprefix("torch."),
        "before_mb": before / 1024, "peak_mb": peak / 1024, "after_mb": after / 1024,
        "weights_mb": weights / 2**20,
        "peak_over_resident": peak / after,
        "load_delta_ratio": (peak - before) / max(1, after - before),
    }


def measure_in_subprocess(path: Path, dtype: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "benchmarks.load_memory", str(path), "--dtype", dtype],
                            capture_output=True, text=True, check=True, env=env, timeout=1800)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    print(json.dumps(measure(args.path, args.dtype)))


if __name__ == "__main__":
    main()
