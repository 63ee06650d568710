"""`--compile`: torch.compile (inductor, frozen weights) for the UNet, with the compile cache on disk.

Opt-in, for long-running servers: the first image of each size pays the compilation (tens of
seconds on the tiny default model, minutes on SD1.5-size models on a 2-core CPU); every later
image at that size runs the compiled kernels. The UNet module is compiled in place
(`module.compile`), so it stays the same UNet2DConditionModel for every mode pipeline built over
it with from_pipe, for LoRA loading and for step caching (each of those re-traces when it changes
the module, never silently reuses a stale graph).

The compiled graphs are kept in `<cache_dir>/inductor` (TORCHINDUCTOR_CACHE_DIR), so a restart
skips inductor's code generation and C++ builds and pays only dynamo's tracing. Freezing folds the
weights into the graph as constants; inductor's oneDNN weight pre-packing is left off because
pre-packed (mkldnn) constants make the graph uncacheable on disk (the FX graph cache bypasses it),
and a restart would then pay the whole compile again. See docs/performance.md for the figures.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

# Inductor options for torch.compile(options=...): weights as constants (freezing), no mkldnn
# pre-packing (keeps the compiled graph cacheable on disk).
INDUCTOR_OPTIONS: dict[str, Any] = {"freezing": True, "cpp.weight_prepack": False}
# Sizes (graphs) compiled per model before dynamo falls back to eager for new shapes.
MAX_SHAPES = 8


def compile_cache_dir(cache_dir: Path) -> Path:
    return cache_dir / "inductor"


def use_compile_cache(cache_dir: Path) -> Path:
    """Point inductor's on-disk caches at the studio's cache folder (before the first compile).
    An explicit TORCHINDUCTOR_CACHE_DIR in the environment wins."""
    folder = Path(os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir(cache_dir))))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def compile_unet(pipe: Any, cache_dir: Path) -> None:
    """Compile `pipe.unet` in place; each new shape compiles once (static shapes: the fastest
    kernels), up to MAX_SHAPES per model."""
    use_compile_cache(cache_dir)
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, MAX_SHAPES)
    pipe.unet.compile(backend="inductor", dynamic=False, options=dict(INDUCTOR_OPTIONS))


def is_compiled(module: torch.nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None
