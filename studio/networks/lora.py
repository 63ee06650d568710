"""LoRA / LyCORIS adapters through diffusers' loaders and peft.

Each file is loaded once per model as a named peft adapter (`pipe.load_lora_weights(state,
adapter_name=...)`); a run activates the prompt's adapters with their text-encoder and UNet
weights (`set_adapters`) or disables them all (`disable_lora`), so the base weights are never
touched or reloaded and a run without tags computes exactly what a fresh model computes.

diffusers converts kohya/A1111 keys (`lora_unet_*`, `lora_te_*`, with `alpha`), LyCORIS LoCon
(the same keys on conv layers) and its own/peft keys. LyCORIS LoHa (`hada_*`) and LoKr (`lokr_*`)
load through studio/networks/lycoris.py; (IA)^3, OFT and full/diff layers are refused by name.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from diffusers import DiffusionPipeline

from studio.networks import lycoris
from studio.networks.discovery import NetworkFile
from studio.networks.files import first_line, read_tensors
from studio.request import RequestError

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
UNSUPPORTED = {  # key marker -> what it is (no loader here; LoHa and LoKr load through networks/lycoris.py)
    ".diff": "a LyCORIS full/diff", ".on_input": "a LyCORIS (IA)^3", ".b_norm": "a LyCORIS norm",
    ".oft_blocks": "an OFT/BOFT", ".oft_diag": "an OFT/BOFT",
}
_DOWN_KEYS = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", "_lora.down.weight")


@dataclass(frozen=True)
class ActiveLora:
    adapter: str
    te_weight: float
    unet_weight: float


def read_lora(entry: NetworkFile, allow_pickle: bool) -> dict[str, torch.Tensor]:
    state = {k: v for k, v in read_tensors(entry, allow_pickle).items() if isinstance(v, torch.Tensor)}
    if lycoris.kind_of(state) is not None:
        return state
    for marker, what in UNSUPPORTED.items():
        if any(marker in key for key in state):
            raise RequestError(f"LoRA {entry.path.name} is {what} network ({marker.strip('.')} keys), which diffusers "
                               "cannot load for Stable Diffusion; use a LoRA/LoCon file instead")
    if not any(key.endswith(_DOWN_KEYS) for key in state):
        raise RequestError(f"LoRA {entry.path.name} holds no LoRA weights (no lora_down/lora_A keys)")
    return state


def check_family(entry: NetworkFile, state: dict[str, torch.Tensor], pipe: DiffusionPipeline, model: str) -> None:
    """Refuse a LoRA made for another model family before loading it (SDXL on SD 1.x, ...)."""
    # kohya's `lora_te1_` alone is SD 1.x's one text encoder (what diffusers' convert_state_dict_to_kohya
    # writes, and what A1111 maps onto SD 1.x); SDXL's second encoder is what tells SDXL.
    two_encoders = any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in state)
    if two_encoders and getattr(pipe, "text_encoder_2", None) is None:
        raise RequestError(f"LoRA {entry.path.name} is for SDXL (two text encoders); {model} is not an SDXL model")
    context = getattr(pipe.unet.config, "cross_attention_dim", None)
    for key, tensor in state.items():
        if ("attn2_to_k" in key or "attn2.to_k" in key) and key.endswith(_DOWN_KEYS) and tensor.ndim == 2:
            if context is not None and tensor.shape[1] != int(context):
                raise RequestError(f"LoRA {entry.path.name} was made for a model with {tensor.shape[1]}-wide "
                                   f"text conditioning; {model} uses {context} (another model family)")
            break


def load_lora(pipe: DiffusionPipeline, entry: NetworkFile, adapter: str, allow_pickle: bool, model: str,
              state: dict[str, torch.Tensor] | None = None) -> None:
    """Load the file (or its `state`, already read) as adapter `adapter`; every LoRA layer of the
    file must find its layer."""
    state = state if state is not None else read_lora(entry, allow_pickle)
    check_family(entry, state, pipe, model)
    expected = sum(1 for key in state if key.endswith(_DOWN_KEYS))
    try:
        with _quiet():
            pipe.load_lora_weights(dict(state), adapter_name=adapter)
    except Exception as error:  # diffusers/peft raise ValueError, RuntimeError, their own errors
        delete_adapter(pipe, adapter)
        raise RequestError(f"LoRA {entry.path.name} does not fit {model}: {_reason(error)}") from error
    found = layer_count(pipe, adapter)
    if found < expected:
        delete_adapter(pipe, adapter)
        raise RequestError(f"LoRA {entry.path.name} does not fit {model}: only {found} of its {expected} layers "
                           "exist in this model (it was made for another model family)")


def _reason(error: BaseException) -> str:
    """diffusers' message, or what it means when the message only points at a log report."""
    text = first_line(error)
    if "mismatch" in text.lower():
        return "its layer shapes do not match this model's (it was made for another model family)"
    if "infer state dict type" in text:
        return "diffusers did not recognise its text-encoder keys"
    return text


def layer_count(pipe: DiffusionPipeline, adapter: str) -> int:
    from peft.tuners.tuners_utils import BaseTunerLayer  # on first use: importing peft pulls in torch._dynamo

    return sum(1 for component in _components(pipe) for module in component.modules()
               if isinstance(module, BaseTunerLayer) and adapter in getattr(module, "lora_A", {}))


def delete_adapter(pipe: DiffusionPipeline, adapter: str) -> None:
    if any(adapter in names for names in pipe.get_list_adapters().values()):
        pipe.delete_adapters(adapter)


def activate(pipe: DiffusionPipeline, active: list[ActiveLora], loaded_any: bool) -> None:
    """Exactly these adapters with these weights, or none (then LoRA layers only call the base)."""
    if not active:
        if loaded_any:
            pipe.disable_lora()
        return
    pipe.enable_lora()
    present = [name for name in ("unet", *TEXT_ENCODERS) if getattr(pipe, name, None) is not None]
    weights = [{name: (lora.unet_weight if name == "unet" else lora.te_weight) for name in present} for lora in active]
    pipe.set_adapters([lora.adapter for lora in active], adapter_weights=weights)


def _components(pipe: DiffusionPipeline) -> list[torch.nn.Module]:
    return [c for c in (getattr(pipe, n, None) for n in ("unet", *TEXT_ENCODERS)) if c is not None]


@contextmanager
def _quiet() -> Iterator[None]:
    """diffusers/transformers log load reports for every adapter; errors still raise."""
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers", "peft")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
