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

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from studio.checkpoints import openvino_parts, openvino_unet
from studio.checkpoints.manager import LoadedModel
from studio.networks import lycoris
from studio.request import GenerationRequest, RequestError
from studio.settings import Settings

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


def _refuse_lycoris(unet: Any) -> None:
    if lycoris.attached_to(unet):  # not any forward hook: a CFG++ sampler leaves its output reader on the UNet
        raise RequestError("the openvino backend does not run LyCORIS (LoHa/LoKr) networks: leave them out, "
                           "or switch the backend to eager")


def _swappable_vae(vae: Any) -> bool:
    return vae is not None and isinstance(getattr(vae, "decoder", None), torch.nn.Module) \
        and hasattr(vae.decoder, "conv_in") and not isinstance(vae.decoder, openvino_parts.OpenVinoDecoder)


class CompiledParts:
    """The OpenVINO stand-ins one engine holds: one per part (UNet, VAE decoder, text encoders), for the
    last weights state used; `conversions` counts the IR conversions they needed (a disk-cache hit needs none)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[tuple[int, str], Any]] = {}  # part -> ((id of the eager module, key), stand-in)
        self.conversions: Counter[str] = Counter()

    def held(self, part: str) -> Any | None:
        """The stand-in kept for `part`, if any."""
        return self._held[part][1] if part in self._held else None

    def held_key(self, part: str) -> str | None:
        return self._held[part][0][1] if part in self._held else None

    def clear(self) -> None:
        """Drop the compiled parts (and the eager modules they hold); the disk cache stays."""
        self._held.clear()

    def _kept(self, part: str, eager: Any, key: str, make: Any) -> Any:
        """The part's stand-in for this weights key: the one in memory, else `make()` (which replaces it)."""
        held = self._held.get(part)
        if held is None or held[0] != (id(eager), key):
            self._held.pop(part, None)  # one compiled version per part in memory: the last state used
            stand = make()
            self.conversions[part] += int(stand.converted)
            self._held[part] = ((id(eager), key), stand)
        return self._held[part][1]

    def unet(self, model: LoadedModel, settings: Settings) -> openvino_unet.OpenVinoUNet:
        """The model's UNet as OpenVINO runs it in its current LoRA state (compiled once per state)."""
        unet = model.pipe.unet
        _refuse_lycoris(unet)
        return self._kept("unet", unet, openvino_unet.weights_key(unet, model.hash),
                          lambda: openvino_unet.openvino_unet(unet, settings.cache_dir, model.hash))

    def decoder(self, model: LoadedModel, settings: Settings, vae: Any) -> openvino_parts.OpenVinoDecoder:
        """`vae.decoder` as OpenVINO runs it (the VAE may be a user-chosen one: keyed by its own weights)."""
        return self._kept("vae_decoder", vae.decoder, openvino_parts.decoder_key(vae, model.hash),
                          lambda: openvino_parts.openvino_decoder(vae, settings.cache_dir, model.hash))

    def encoder(self, model: LoadedModel, settings: Settings, part: str, encoder: Any) -> openvino_parts.OpenVinoTextEncoder:
        """A text encoder as OpenVINO runs it (keyed by its weights, LoRA state and embedding table)."""
        return self._kept(part, encoder, openvino_parts.encoder_key(encoder, model.hash),
                          lambda: openvino_parts.openvino_text_encoder(encoder, settings.cache_dir, model.hash, part))

    @contextmanager
    def text_encoders_backend(self, pipe: Any, model: LoadedModel, settings: Settings, backend: str) -> Iterator[None]:
        """Encode prompts with the backend's text encoders for the duration (eager: nothing changes)."""
        if backend != "openvino":
            yield
            return
        eager = {part: getattr(pipe, part) for part in TEXT_ENCODERS if getattr(pipe, part, None) is not None}
        for part, encoder in eager.items():
            if isinstance(encoder, openvino_parts.OpenVinoTextEncoder):
                continue  # already swapped by an outer block
            object.__setattr__(pipe, part, self.encoder(model, settings, part, encoder))
        try:
            yield
        finally:
            for part, encoder in eager.items():
                object.__setattr__(pipe, part, encoder)

    @contextmanager
    def unet_backend(self, pipe: Any, model: LoadedModel, settings: Settings, backend: str) -> Iterator[None]:
        """Run `pipe` with the backend's UNet for the duration (eager: nothing changes)."""
        if backend != "openvino":
            self.clear()  # back on eager: the compiled parts (and the eager modules they hold) can go
            yield
            return
        eager, vae = pipe.unet, getattr(pipe, "vae", None)
        decoder = vae.decoder if _swappable_vae(vae) else None
        object.__setattr__(pipe, "unet", self.unet(model, settings))  # not registered: the pipeline's config keeps the UNet
        try:
            if decoder is not None:
                vae.decoder = self.decoder(model, settings, vae)  # vae.decode(...) runs post_quant_conv, then this
            with self.text_encoders_backend(pipe, model, settings, backend):  # for prompts the pipeline encodes itself
                yield
        finally:
            object.__setattr__(pipe, "unet", eager)
            if decoder is not None:
                vae.decoder = decoder
