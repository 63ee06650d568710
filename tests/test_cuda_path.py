"""The CUDA path's choices, tested without a GPU: fp16 on CUDA, --medvram/--lowvram as offloading,
SDPA attention, and a half-precision VAE decode that gives NaN retried in float32 (never a black PNG)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from studio.checkpoints.devices import pick_dtype
from studio.checkpoints.manager import ModelManager
from studio.checkpoints.offload import MODEL, NONE, SEQUENTIAL, offload_mode, place
from studio.cli import main as cli
from studio.generation.engine import Engine
from studio.generation.vae_guard import nan_safe_decode
from studio.request import GenerationRequest

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
REQUEST = GenerationRequest(prompt="a red circle on a blue background", sampler_name="Euler", steps=3,
                            width=64, height=64, seed=11)


def test_auto_dtype_is_fp16_on_cuda_whatever_the_model_size():
    assert pick_dtype("auto", CUDA, 1_000) == torch.float16
    assert pick_dtype("auto", CUDA, 860_000_000) == torch.float16
    assert pick_dtype("auto", CPU, 1_000) == torch.float32  # the tiny default model stays fp32 on CPU
    assert pick_dtype("float32", CUDA, 860_000_000) == torch.float32  # an explicit --dtype wins


@pytest.mark.parametrize("device, medvram, lowvram, expected", [
    (CUDA, False, False, NONE),
    (CUDA, True, False, MODEL),
    (CUDA, False, True, SEQUENTIAL),
    (CUDA, True, True, SEQUENTIAL),  # --lowvram wins
    (CPU, True, True, NONE),  # nothing to offload to on a CPU
])
def test_memory_flags_pick_the_offload(device, medvram, lowvram, expected):
    assert offload_mode(device, medvram, lowvram) == expected


def test_memory_flags_reach_settings():
    args = cli.build_parser().parse_args(["serve", "--medvram"])
    assert cli.settings_from_args(args).medvram and not cli.settings_from_args(args).lowvram
    args = cli.build_parser().parse_args(["generate", "--lowvram", "--prompt", "x"])
    assert cli.settings_from_args(args).lowvram


class RecordingPipe:
    """Stands in for a pipeline on a GPU this machine does not have: records which placement ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, torch.device]] = []

    def to(self, device: torch.device) -> None:
        self.calls.append(("to", device))

    def enable_model_cpu_offload(self, device: torch.device) -> None:
        self.calls.append(("model offload", device))

    def enable_sequential_cpu_offload(self, device: torch.device) -> None:
        self.calls.append(("sequential offload", device))


@pytest.mark.parametrize("mode, call", [(NONE, "to"), (MODEL, "model offload"), (SEQUENTIAL, "sequential offload")])
def test_each_offload_mode_uses_diffusers_offloading(mode, call):
    pipe = RecordingPipe()
    place(pipe, CUDA, mode)
    assert pipe.calls == [(call, CUDA)]


def test_attention_runs_through_sdpa(engine):
    processors = engine.models.current().pipe.unet.attn_processors
    assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors.values())


def _nan_in_half_precision(module, inputs, output):
    """Simulates fp16 overflow: the VAE's last conv gives NaN unless it runs in float32."""
    return output * float("nan") if module.weight.dtype != torch.float32 else None


def test_a_nan_half_precision_vae_decode_is_retried_in_fp32_never_a_black_png(settings, one_torch_thread):
    engine = Engine(ModelManager(settings.replace(dtype="bfloat16")))
    pipe = engine.models.current().pipe
    clean = np.asarray(engine.run(REQUEST).images[0].image, dtype=float)

    hook = pipe.vae.decoder.conv_out.register_forward_hook(_nan_in_half_precision)
    try:
        with torch.inference_mode():  # the bare pipeline (no guard): NaN becomes a black image
            bare = pipe(REQUEST.prompt, num_inference_steps=3, width=64, height=64,
                        generator=torch.Generator().manual_seed(11)).images[0]
        guarded = np.asarray(engine.run(REQUEST).images[0].image, dtype=float)
    finally:
        hook.remove()

    assert np.asarray(bare).max() == 0  # what the guard prevents
    assert guarded.std() > 10  # a picture, not a flat colour
    assert np.abs(guarded - clean).mean() < 3  # the fp32 decode of the same latents
    assert pipe.vae.dtype == torch.bfloat16 and "decode" not in vars(pipe.vae)  # back as it was


def test_a_float32_vae_is_not_wrapped():
    class Vae:
        dtype = torch.float32

        def decode(self, z):
            return (z,)

    vae = Vae()
    with nan_safe_decode(vae):
        assert "decode" not in vars(vae)
