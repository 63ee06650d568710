"""reference_only (sd-webui-controlnet's "Reference" type): no ControlNet model; the reference image
steers the UNet's self-attention.

At every UNet call the reference image's latents, noised to the call's timestep, go through the
UNet first ("write": each self-attention layer keeps its input); then the real call runs with each
active layer attending to its own tokens and the reference's ("read"). As sd-webui-controlnet:
the unit's weight picks the layers (sorted widest first, layer i of n is active when i/n < weight),
Style Fidelity mixes in, for the unconditional half of CFG, attention without the reference
(Balanced mode; 0 with "My prompt is more important", 1 with "ControlNet is more important"), and
the guidance window is read from the timestep.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

BALANCED, PROMPT, CONTROL = range(3)


@dataclass
class ReferenceBank:
    """What the write call stored per layer, and which call is running."""

    writing: bool = False
    active: bool = False  # a read call within the guidance window
    stored: dict[str, torch.Tensor] = field(default_factory=dict)


class ReferenceAttention:
    """A self-attention processor that stores (write) or attends to (read) the reference's tokens."""

    def __init__(self, inner: Any, bank: ReferenceBank, name: str, fidelity: float, uncond_rows: int) -> None:
        self.inner, self.bank, self.name = inner, bank, name
        self.fidelity, self.uncond_rows = fidelity, uncond_rows

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        if self.bank.writing:
            self.bank.stored[self.name] = hidden_states
            return self.inner(attn, hidden_states, encoder_hidden_states, *args, **kwargs)
        reference = self.bank.stored.get(self.name)
        if not self.bank.active or reference is None or reference.shape[0] != hidden_states.shape[0]:
            return self.inner(attn, hidden_states, encoder_hidden_states, *args, **kwargs)
        context = torch.cat([hidden_states, reference.to(hidden_states.dtype)], dim=1)
        with_reference = self.inner(attn, hidden_states, context, *args, **kwargs)
        if self.fidelity <= 0 or self.uncond_rows == 0:
            return with_reference
        rows = slice(0, self.uncond_rows)  # CFG's unconditional half: nearer to attention without the reference
        plain = self.inner(attn, hidden_states[rows], None, *args, **kwargs)
        mixed = with_reference.clone()
        mixed[rows] = self.fidelity * plain + (1 - self.fidelity) * with_reference[rows]
        return mixed


def fidelity_for(control_mode: int, style_fidelity: float) -> float:
    return {BALANCED: min(max(style_fidelity, 0.0), 1.0), PROMPT: 0.0, CONTROL: 1.0}[control_mode]


def self_attention_layers(unet: torch.nn.Module, weight: float) -> list[str]:
    """The attn1 processors the weight activates: widest layers first, layer i of n while i/n < weight."""
    layers = [(name, module) for name, module in unet.named_modules() if name.endswith("attn1")]
    layers.sort(key=lambda item: -int(item[1].to_q.in_features))
    return [f"{name}.processor" for i, (name, _) in enumerate(layers) if i / len(layers) < weight]


def _noised(latents: torch.Tensor, noise: torch.Tensor, timestep: Any, alphas: torch.Tensor) -> torch.Tensor:
    """The reference at the UNet's input scale for `timestep` (variance preserving: what every
    scheduler's scale_model_input gives the UNet), interpolating between integer timesteps."""
    t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
    t = min(max(t, 0.0), len(alphas) - 1.0)
    low, high = int(t), min(int(t) + 1, len(alphas) - 1)
    alpha = alphas[low] + (alphas[high] - alphas[low]) * (t - low)
    return alpha.sqrt() * latents + (1 - alpha).sqrt() * noise


@contextmanager
def reference_attention(unet: torch.nn.Module, reference_latents: torch.Tensor, alphas_cumprod: torch.Tensor,
                        weight: float, fidelity: float, window: tuple[float, float], cfg_active: bool,
                        seed: int) -> Iterator[None]:
    """While inside, every UNet call of `unet` is steered by the reference (see the module doc)."""
    bank = ReferenceBank()
    noise = torch.randn(reference_latents.shape, generator=torch.Generator().manual_seed(seed))
    noise = noise.to(reference_latents.device, reference_latents.dtype)
    alphas = alphas_cumprod.to(torch.float64)
    original = unet.attn_processors
    chosen = set(self_attention_layers(unet, weight))
    state = {"uncond_rows": 0}
    wrapped = {name: (ReferenceAttention(proc, bank, name, fidelity, 0) if name in chosen else proc)
               for name, proc in original.items()}

    def before(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if bank.writing:
            return
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        progress = 1.0 - float(timestep.flatten()[0] if torch.is_tensor(timestep) else timestep) / len(alphas)
        bank.active = window[0] <= progress <= window[1]
        if not bank.active:
            return
        rows = sample.shape[0]
        state["uncond_rows"] = rows // 2 if cfg_active else 0
        for proc in wrapped.values():
            if isinstance(proc, ReferenceAttention):
                proc.uncond_rows = state["uncond_rows"]
        reference = _noised(reference_latents, noise, timestep, alphas).to(sample.dtype).expand(rows, -1, -1, -1)
        extra = {key: kwargs[key] for key in ("timestep_cond", "added_cond_kwargs", "cross_attention_kwargs")
                 if key in kwargs}
        hidden = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        bank.writing = True
        try:
            module(reference, timestep, encoder_hidden_states=hidden, return_dict=False, **extra)
        finally:
            bank.writing = False

    unet.set_attn_processor(wrapped)
    handle = unet.register_forward_pre_hook(before, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
        unet.set_attn_processor(original)
        bank.stored.clear()
