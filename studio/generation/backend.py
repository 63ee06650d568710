"""The backend of a run: eager torch, or OpenVINO compiled parts swapped into the pipeline for the pass
and swapped back after it: the UNet (studio/checkpoints/openvino_unet.py), the VAE decoder and the text
encoders (studio/checkpoints/openvino_parts.py; the prompts are encoded in the engine's plan, inside
`text_encoders_backend`).

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

import torch

from studio.checkpoints import openvino_parts, openvino_unet
from studio.checkpoints.manager import LoadedModel
from studio.request import GenerationRequest, RequestError
from studio.settings import Settings

# One compiled stand-in per part kept in memory: part -> ((id of the eager module, weights key), stand-in).
_compiled: dict[str, tuple[tuple[int, str], Any]] = {}
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


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
    return _kept("unet", unet, openvino_unet.weights_key(unet, model.hash),
                 lambda: openvino_unet.openvino_unet(unet, settings.cache_dir, model.hash))


def _kept(part: str, eager: Any, key: str, make: Any) -> Any:
    """The part's stand-in for this weights key: the one in memory, else `make()` (which replaces it)."""
    held = _compiled.get(part)
    if held is None or held[0] != (id(eager), key):
        _compiled.pop(part, None)  # one compiled version per part in memory: the last state used
        _compiled[part] = ((id(eager), key), make())
    return _compiled[part][1]


def decoder_stand_in(model: LoadedModel, settings: Settings, vae: Any) -> openvino_parts.OpenVinoDecoder:
    """`vae.decoder` as OpenVINO runs it (the VAE may be a user-chosen one: keyed by its own weights)."""
    return _kept("vae_decoder", vae.decoder, openvino_parts.decoder_key(vae, model.hash),
                 lambda: openvino_parts.openvino_decoder(vae, settings.cache_dir, model.hash))


def encoder_stand_in(model: LoadedModel, settings: Settings, part: str, encoder: Any) -> openvino_parts.OpenVinoTextEncoder:
    """A text encoder as OpenVINO runs it (keyed by its weights, LoRA state and embedding table)."""
    return _kept(part, encoder, openvino_parts.encoder_key(encoder, model.hash),
                 lambda: openvino_parts.openvino_text_encoder(encoder, settings.cache_dir, model.hash, part))


def _swappable_vae(vae: Any) -> bool:
    return vae is not None and isinstance(getattr(vae, "decoder", None), torch.nn.Module) \
        and hasattr(vae.decoder, "conv_in") and not isinstance(vae.decoder, openvino_parts.OpenVinoDecoder)


@contextmanager
def text_encoders_backend(pipe: Any, model: LoadedModel, settings: Settings, backend: str) -> Iterator[None]:
    """Encode prompts with the backend's text encoders for the duration (eager: nothing changes)."""
    if backend != "openvino":
        yield
        return
    eager = {part: getattr(pipe, part) for part in TEXT_ENCODERS if getattr(pipe, part, None) is not None}
    for part, encoder in eager.items():
        if isinstance(encoder, openvino_parts.OpenVinoTextEncoder):
            continue  # already swapped by an outer block
        object.__setattr__(pipe, part, encoder_stand_in(model, settings, part, encoder))
    try:
        yield
    finally:
        for part, encoder in eager.items():
            object.__setattr__(pipe, part, encoder)


@contextmanager
def unet_backend(pipe: Any, model: LoadedModel, settings: Settings, backend: str) -> Iterator[None]:
    """Run `pipe` with the backend's UNet for the duration (eager: nothing changes)."""
    if backend != "openvino":
        _compiled.clear()  # back on eager: the compiled parts (and the eager modules they hold) can go
        yield
        return
    eager, vae = pipe.unet, getattr(pipe, "vae", None)
    decoder = vae.decoder if _swappable_vae(vae) else None
    object.__setattr__(pipe, "unet", stand_in(model, settings))  # not registered: the pipeline's config keeps the UNet
    try:
        if decoder is not None:
            vae.decoder = decoder_stand_in(model, settings, vae)  # vae.decode(...) runs post_quant_conv, then this
        with text_encoders_backend(pipe, model, settings, backend):  # for prompts the pipeline encodes itself
            yield
    finally:
        object.__setattr__(pipe, "unet", eager)
        if decoder is not None:
            vae.decoder = decoder
