"""Run as a script: switch between the default model and a single-file checkpoint N times and
print RSS (bytes) after each cycle as JSON. A fresh process keeps the measurement clean."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil
import torch

from studio.checkpoints.manager import ModelManager
from studio.settings import Settings


def main(root: str, cycles: str, checkpoint: str) -> None:
    torch.set_num_threads(1)
    base = Path(root)
    settings = Settings(models_dir=base / "models", outputs_dir=base / "outputs",
                        extensions_dir=base / "extensions", cache_dir=base / "cache")
    models = ModelManager(settings)
    process = psutil.Process()
    readings = [process.memory_info().rss]
    models.current()
    for _ in range(int(cycles)):
        models.load(checkpoint)
        models.load("studio-default-64px")
        readings.append(process.memory_info().rss)
    print(json.dumps(readings))


if __name__ == "__main__":
    main(*sys.argv[1:])
