"""Loading a ControlNet (a diffusers folder, or a single file with its config beside it) offline."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from diffusers import ControlNetModel

from studio.checkpoints.devices import prefers_channels_last
from studio.control.catalog import ControlNetEntry
from studio.errors import ModelError


def load_controlnet(entry: ControlNetEntry, dtype: torch.dtype, device: torch.device) -> ControlNetModel:
    try:
        if entry.kind == "diffusers":
            model = ControlNetModel.from_pretrained(entry.location, dtype=dtype, local_files_only=True)
        else:
            model = _load_single_file(Path(entry.location), dtype)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ModelError(f"could not load ControlNet {entry.title}: {str(error).splitlines()[0]}") from error
    model.to(device=device)
    if prefers_channels_last(device, dtype):
        model.to(memory_format=torch.channels_last)
    return model.eval()


def _load_single_file(path: Path, dtype: torch.dtype) -> ControlNetModel:
    """A single-file ControlNet needs its diffusers config beside it as <name>.json (offline:
    nothing is fetched to guess it)."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise ModelError(f"{path.name}: put its diffusers config.json beside it as {sidecar.name}")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_text(json.dumps(json.loads(sidecar.read_text())))
        return ControlNetModel.from_single_file(str(path), config=folder, local_files_only=True, torch_dtype=dtype)
