"""The UNet backend of a run: eager torch, or the OpenVINO compiled UNet (studio/checkpoints/openvino_unet.py)
swapped into the pipeline for the pass and swapped back after it.

What the OpenVINO UNet cannot do is refused before any work, by name (never silently run eager):
ControlNet units, reference_only and IP-Adapter (they change the UNet's call or its attention),
step caching (cache_interval), token merging, the SDXL refiner, LyCORIS LoHa/LoKr (forward hooks).
LoRA adapters are traced into the converted graph: each LoRA set and weight is one more conversion
(cached on disk), so it is fused rather than refused.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from studio.checkpoints import openvino_unet
from studio.checkpoints.manager import LoadedModel
from studio.request import GenerationRequest, RequestError
from studio.settings import Settings

# The one compiled UNet kept in memory: (id of the eager UNet, weights key) -> stand-in.
_compiled: dict[tuple[int, str], openvino_unet.OpenVinoUNet] = {}


def refusals(request: GenerationRequest, control_units: int, refiner: bool) -> list[str]:
    """What this request asks for that the openvino backend does not run."""
    found = []
    if control_units:
        found.append("ControlNet units (also reference_only and IP-Adapter)")
    if request.cache_interval > 1:
        found.append("step caching (cache_interval)")
    if request.token_merging_ratio > 0:
        found.append("token merging (token_merging_ratio)")
    if refiner:
        found.append("the SDXL refiner (refiner_checkpoint)")
    return found


def check_request(request: GenerationRequest, control_units: int, refiner: bool) -> None:
    found = refusals(request, control_units, refiner)
    if found:
        raise RequestError(f"the openvino backend does not run {'; '.join(found)}: turn "
                           f"{'it' if len(found) == 1 else 'them'} off, or switch the backend to eager "
                           "(Settings, or --backend eager)")


def stand_in(model: LoadedModel, settings: Settings) -> openvino_unet.OpenVinoUNet:
    """The model's UNet as OpenVINO runs it in its current LoRA state (compiled once per state)."""
    unet = model.pipe.unet
    if any(module._forward_hooks for module in unet.modules()):
        raise RequestError("the openvino backend does not run LyCORIS (LoHa/LoKr) networks: leave them out, "
                           "or switch the backend to eager")
    key = (id(unet), openvino_unet.weights_key(unet, model.hash))
    if key not in _compiled:
        _compiled.clear()  # one compiled UNet in memory: the last state used
        _compiled[key] = openvino_unet.openvino_unet(unet, settings.cache_dir, model.hash)
    return _compiled[key]


@contextmanager
def unet_backend(pipe: Any, model: LoadedModel, settings: Settings, backend: str) -> Iterator[None]:
    """Run `pipe` with the backend's UNet for the duration (eager: nothing changes)."""
    if backend != "openvino":
        _compiled.clear()  # back on eager: the compiled UNet (and the eager UNet it holds) can go
        yield
        return
    eager = pipe.unet
    object.__setattr__(pipe, "unet", stand_in(model, settings))  # not registered: the pipeline's config keeps the UNet
    try:
        yield
    finally:
        object.__setattr__(pipe, "unet", eager)
