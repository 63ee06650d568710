"""Device, dtype and thread choices for this machine."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """avx512_bf16 or AMX: bfloat16 matmuls are then much faster than float32 on CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def pick_dtype(requested: str, device: torch.device, parameter_count: int) -> torch.dtype:
    """`auto`: float16 on CUDA; bfloat16 on CPUs with fast bf16 for models large enough to
    gain from it; float32 otherwise. Tiny models (the embedded default) stay in float32:
    bf16 buys nothing there and costs accuracy."""
    if requested != "auto":
        try:
            return _DTYPES[requested]
        except KeyError:
            raise ValueError(f"unknown dtype {requested!r}; use auto, float32, float16 or bfloat16")
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16() and parameter_count > 100_000_000:
        return torch.bfloat16
    return torch.float32


def prefers_channels_last(device: torch.device, dtype: torch.dtype) -> bool:
    """NHWC convolutions: measured faster for bf16 on CPU (oneDNN's blocked kernels); elsewhere
    the default layout is kept (fp32 CPU gains little, CUDA picks its own)."""
    return device.type == "cpu" and dtype == torch.bfloat16


def use_memory_format(modules: list[torch.nn.Module], device: torch.device, dtype: torch.dtype) -> None:
    """channels_last for the conv-heavy models (UNet, VAE, ControlNet) where it pays off."""
    if prefers_channels_last(device, dtype):
        for module in modules:
            module.to(memory_format=torch.channels_last)


def physical_cores() -> int:
    """Physical cores (hyper-threads share units, extra torch threads only contend)."""
    try:
        import psutil

        count = psutil.cpu_count(logical=False)
        if count:
            return count
    except ImportError:
        pass
    return os.cpu_count() or 1


def configure_threads(threads: int | None = None) -> None:
    """Torch threads: `threads` when given, else the physical cores. CPU results can differ in
    the last bit between thread counts, so the count is recorded in every image's recipe."""
    torch.set_num_threads(threads or physical_cores())
