"""A1111's two guidance/attention speed options, attached to a pipeline for one call:

- token merging (`token_merging_ratio`, Bolya & Hoffman's ToMe for SD through the `tomesd`
  package, as A1111 applies it: deterministic, self-attention only, the highest resolution only);
- "Negative Guidance minimum sigma" (`s_min_uncond`, infotext "NGMS"): at steps whose sigma is
  below it, every other step runs the UNet on the conditional half only and uses it for both
  halves (A1111 alternates so the threshold can be higher without the quality loss).

0 leaves the UNet untouched, so a run without them is bit-identical to one before they existed.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from studio.request import RequestError


@contextmanager
def token_merging(pipe: Any, ratio: float) -> Iterator[None]:
    if ratio <= 0:
        yield
        return
    try:
        import tomesd
    except ModuleNotFoundError:
        raise RequestError("token_merging_ratio needs the tomesd package: pip install tomesd") from None
    # A1111's call (modules/sd_models.py): no random partition, merge in self-attention only, at the
    # highest resolution that has attention (SD's first level, as A1111; the default model's second).
    tomesd.apply_patch(pipe.unet, ratio=ratio, max_downsample=_first_attention_downsample(pipe.unet), use_rand=False,
                       merge_attn=True, merge_crossattn=False, merge_mlp=False)
    try:
        yield
    finally:
        tomesd.remove_patch(pipe.unet)


def _first_attention_downsample(unet: Any) -> int:
    types = list(getattr(unet.config, "down_block_types", ()))
    level = next((i for i, kind in enumerate(types) if "Attn" in kind), 0)
    return min(2 ** level, 8)


def _sigma(scheduler: Any, timestep: Any) -> float:
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        return float("inf")
    index = int(torch.as_tensor(timestep).flatten()[0].round().clamp(0, len(alphas) - 1))
    alpha = float(alphas[index])
    return float("inf") if alpha <= 0 else ((1 - alpha) / alpha) ** 0.5


def _half(value: Any, batch: int) -> Any:
    """The conditional half of a batched [uncond, cond] argument (tensors and dicts of them)."""
    if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == 2 * batch:
        return value[batch:]
    if isinstance(value, dict):
        return {key: _half(item, batch) for key, item in value.items()}
    return value


@contextmanager
def skip_uncond_at_low_sigma(pipe: Any, s_min_uncond: float) -> Iterator[None]:
    if s_min_uncond <= 0:
        yield
        return
    unet, forward, calls = pipe.unet, pipe.unet.forward, [0]

    def guided_forward(sample: torch.Tensor, timestep: Any, *args: Any, **kwargs: Any) -> Any:
        step, calls[0] = calls[0], calls[0] + 1
        if sample.shape[0] % 2 or step % 2 == 0 or _sigma(pipe.scheduler, timestep) >= s_min_uncond:
            return forward(sample, timestep, *args, **kwargs)
        batch = sample.shape[0] // 2
        out = forward(sample[batch:], _half(timestep, batch), *[_half(a, batch) for a in args],
                      **{key: _half(value, batch) for key, value in kwargs.items()})
        first = out[0] if isinstance(out, tuple) else out.sample
        doubled = torch.cat([first, first])  # uncond := cond, so the guidance gives the cond prediction
        if isinstance(out, tuple):
            return (doubled, *out[1:])
        out.sample = doubled
        return out

    unet.forward = guided_forward
    try:
        yield
    finally:
        del unet.forward  # back to the class's forward
