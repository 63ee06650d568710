"""What a single-file checkpoint predicts: noise ("epsilon") or velocity ("v_prediction").

The file itself does not say. As A1111 decides it:
1. a sidecar beside the checkpoint, `<name>.yaml` (the original LDM config A1111 users keep next to
   SD 2.x files: `model.params.parameterization: "v"`) or `<name>.json` (`{"parameterization": "v"}`
   or diffusers' `{"prediction_type": "v_prediction"}`);
2. without a sidecar, when the bundled configs that fit the file's shapes differ in what they predict
   (SD 2.x: 512-base epsilon, 768-v velocity), A1111's test run: the UNet on a constant input at
   t=999 — a v-prediction model answers far below the input (mean difference < -1);
3. otherwise the bundled config's own scheduler setting.
A sidecar is only read beside a discovered checkpoint, as data (yaml.safe_load / json), never run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from studio.errors import ModelError

EPSILON, V_PREDICTION = "epsilon", "v_prediction"
_NAMES = {"v": V_PREDICTION, "v_prediction": V_PREDICTION, "eps": EPSILON, "epsilon": EPSILON}
_MAX_SIDECAR_BYTES = 1_000_000


def sidecar_prediction(checkpoint: Path) -> str | None:
    """The prediction type a `<name>.yaml` / `<name>.json` beside the checkpoint names, or None."""
    for suffix in (".yaml", ".yml", ".json"):
        sidecar = checkpoint.with_suffix(suffix)
        if sidecar.is_file():
            return _read_sidecar(sidecar)
    return None


def _read_sidecar(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_SIDECAR_BYTES:
            raise ValueError("larger than 1 MB")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise ModelError(f"could not read {path.name} beside the checkpoint: {str(error).splitlines()[0][:200]}") from error
    value = _find(data)
    if value is None:
        return EPSILON  # an LDM config without `parameterization` is an epsilon model (LDM's default)
    if not isinstance(value, str) or value.strip().lower() not in _NAMES:
        raise ModelError(f"{path.name}: parameterization must be \"v\" or \"eps\" (got {str(value)[:40]!r})")
    return _NAMES[value.strip().lower()]


def _find(data: Any) -> Any:
    """parameterization / prediction_type at the top, or under model.params (the LDM layout)."""
    if not isinstance(data, dict):
        return None
    for key in ("parameterization", "prediction_type"):
        if key in data:
            return data[key]
    model = data.get("model")
    params = model.get("params") if isinstance(model, dict) else None
    return _find(params) if isinstance(params, dict) else None


def looks_v_prediction(unet: Any) -> bool:
    """A1111's `is_using_v_parameterization_for_sd2`: (unet(0.5, t=999, context=0.5) - 0.5).mean() < -1."""
    device, dtype = unet.device, unet.dtype
    context = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, device=device, dtype=dtype)
    sample = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=device, dtype=dtype)
    with torch.inference_mode():
        out = unet(sample, torch.tensor([999], device=device), encoder_hidden_states=context).sample
    return (out.float() - sample.float()).mean().item() < -1


def prediction_type(checkpoint: Path, unet: Any, choices: list[str]) -> str:
    """The prediction type to run the checkpoint with: its sidecar's; else, when the bundled configs
    that fit its shapes disagree (SD 2.x 512-base / 768-v), A1111's test run; else the config's."""
    named = sidecar_prediction(checkpoint)
    if named is not None:
        return named
    if len(set(choices)) > 1:
        return V_PREDICTION if looks_v_prediction(unet) else EPSILON
    return choices[0]
