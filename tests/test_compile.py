"""--compile: the compiled UNet makes the same picture, and its compile cache lands on disk.

Compiling even the tiny default model takes ~25 s of CPU here (1-2 minutes of wall time on a
busy 2-core machine), so this module compiles once and is marked slow.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.checkpoints.compilation import compile_cache_dir, is_compiled
from studio.checkpoints.manager import ModelManager
from studio.cli import main as cli
from studio.generation.engine import Engine
from studio.request import GenerationRequest

pytestmark = pytest.mark.slow

REQUEST = GenerationRequest(prompt="a red circle on a blue background", sampler_name="Euler", steps=2,
                            width=64, height=64, seed=7)


def test_compile_flag_reaches_settings():
    args = cli.build_parser().parse_args(["serve", "--compile"])
    assert cli.settings_from_args(args).compile is True
    args = cli.build_parser().parse_args(["generate", "--prompt", "x"])
    assert cli.settings_from_args(args).compile is False


def test_compiled_unet_matches_the_eager_image_and_caches_on_disk(settings, monkeypatch, one_torch_thread):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)  # the studio's cache folder is used
    eager_engine = Engine(ModelManager(settings))
    eager = np.asarray(eager_engine.run(REQUEST).images[0].image, dtype=float)

    engine = Engine(ModelManager(settings.replace(compile=True)))
    unet = engine.models.current().pipe.unet
    assert is_compiled(unet) and not is_compiled(eager_engine.models.current().pipe.unet)
    compiled = np.asarray(engine.run(REQUEST).images[0].image, dtype=float)
    again = np.asarray(engine.run(REQUEST).images[0].image, dtype=float)

    # Within bf16 tolerance of the eager picture (frozen weights, fused kernels sum in another order).
    assert np.abs(compiled - eager).mean() < 3
    assert np.abs(compiled.mean(axis=(0, 1)) - eager.mean(axis=(0, 1))).max() < 3
    assert np.array_equal(compiled, again)  # the compiled graph is reused, deterministically
    cached = [p for p in compile_cache_dir(settings.cache_dir).rglob("*") if p.is_file()]
    assert any("fxgraph" in p.parts for p in cached), cached[:20]  # the graph itself, for the next start
    assert torch._dynamo.utils.counters["inductor"]["fxgraph_cache_bypass"] == 0
