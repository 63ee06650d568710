"""A VAE decode that never turns into a black PNG: NaN/inf in a half-precision decode -> fp32 retry.

The SD 1.x/SDXL VAEs overflow float16 on some latents (large activations in the decoder's last
blocks); the decode is then NaN and the saved image black. A1111 answers with --no-half-vae or an
automatic switch to float32; here, while a pipeline runs inside `nan_safe_decode(vae)`, a decode
whose result is not finite is decoded again in float32 (the VAE is cast up for that one decode and
back, so encoders and the next run keep the model's dtype) and the fp32 result is returned in the
dtype the pipeline expects. Float32 VAEs are passed straight through (nothing to retry).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


@contextmanager
def nan_safe_decode(vae: Any) -> Iterator[None]:
    """Within the block, `vae.decode` retries in float32 when a half-precision decode is not finite."""
    if vae is None or getattr(vae, "dtype", torch.float32) not in HALF_DTYPES or "decode" in vars(vae):
        yield  # nothing to guard, or already guarded by an outer block
        return
    original = vae.decode

    def decode(z: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        output = original(z, *args, **kwargs)
        sample = _sample(output)
        if torch.isfinite(sample).all():
            return output
        return _replace_sample(output, decode_in_float32(vae, original, z, *args, **kwargs).to(sample.dtype))

    vae.decode = decode
    try:
        yield
    finally:
        del vae.decode  # the class's own method again


def decode_in_float32(vae: Any, decode: Any, z: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """One decode with the VAE (and the latents) in float32, the VAE cast back afterwards."""
    dtype = vae.dtype
    vae.to(torch.float32)
    try:
        with torch.autocast(device_type=z.device.type, enabled=False):
            return _sample(decode(z.to(torch.float32), *args, **kwargs))
    finally:
        vae.to(dtype)


def _sample(output: Any) -> torch.Tensor:
    return output.sample if hasattr(output, "sample") else output[0]


def _replace_sample(output: Any, sample: torch.Tensor) -> Any:
    if hasattr(output, "sample"):
        output.sample = sample
        return output
    return (sample, *output[1:])
