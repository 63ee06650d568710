"""channels_last (on for bf16 on CPU) changes the memory layout, not the picture."""
from __future__ import annotations

import numpy as np
import torch

from studio.checkpoints.devices import prefers_channels_last
from studio.checkpoints.manager import ModelManager
from studio.generation.engine import Engine
from studio.request import GenerationRequest

REQUEST = GenerationRequest(prompt="a red circle on a blue background", sampler_name="Euler", steps=6,
                            width=64, height=64, seed=5)


def test_channels_last_is_chosen_for_bf16_on_cpu_only():
    assert prefers_channels_last(torch.device("cpu"), torch.bfloat16)
    assert not prefers_channels_last(torch.device("cpu"), torch.float32)
    assert not prefers_channels_last(torch.device("cuda"), torch.float16)


def test_bf16_images_with_channels_last_stay_within_bf16_tolerance(settings):
    engine = Engine(ModelManager(settings.replace(dtype="bfloat16")))
    pipe = engine.models.current().pipe
    assert pipe.unet.dtype == torch.bfloat16
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)  # on by default here
    nhwc = np.asarray(engine.run(REQUEST).images[0].image, dtype=float)
    for module in (pipe.unet, pipe.vae):
        module.to(memory_format=torch.contiguous_format)
    nchw = np.asarray(engine.run(REQUEST).images[0].image, dtype=float)
    # bf16 keeps 8 bits of mantissa: kernels that sum in another order differ by a few levels.
    assert np.abs(nhwc - nchw).mean() < 3
    assert np.abs(nhwc.mean(axis=(0, 1)) - nchw.mean(axis=(0, 1))).max() < 3
