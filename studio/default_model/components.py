"""The embedded default model's components: configs, the tokenizer vocabulary writer and builders.

Every component is a standard diffusers / transformers class built from a small config, so the
shipped folder loads through ``StableDiffusionPipeline.from_pretrained`` like any checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from studio.checkpoints.clip_vocab import bytes_to_unicode

from .dataset import CAPTION_WORDS

IMAGE_SIZE = 64
LATENT_SIZE = 16
CONTROL_KINDS: tuple[str, ...] = ("canny", "scribble", "pose")

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77

VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    sample_size=IMAGE_SIZE,
    scaling_factor=1.0,  # replaced by 1/std of the latents after VAE training
)

TEXT_CONFIG: dict[str, Any] = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=MAX_LENGTH,
    projection_dim=128,
    hidden_act="quick_gelu",
)

UNET_CONFIG: dict[str, Any] = dict(
    sample_size=LATENT_SIZE,
    in_channels=4,
    out_channels=4,
    # No attention at 16x16 (it doubled the step time on this CPU); cross-attention at 8x8 + mid.
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(64, 96),
    layers_per_block=1,
    cross_attention_dim=128,
    attention_head_dim=4,  # diffusers' legacy name: number of heads
    norm_num_groups=32,
    addition_embed_type="text",  # attention-pooled prompt added to the time embedding
)

# Zero-terminal-SNR schedule with v-prediction and trailing timesteps: on 16x16 latents the
# SD-1.x schedule leaves the background to the noise. All five studio samplers support these keys.
SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
    steps_offset=1,
    clip_sample=False,  # DDIM's default True clips the (unit-variance) latents to [-1, 1]
    set_alpha_to_one=True,
)

# A 4x VAE: one stride-2 stage fewer than the SD default (16, 32, 96, 256).
CONTROLNET_EMBEDDING_CHANNELS: tuple[int, ...] = (16, 32, 64)


# ---------------------------------------------------------------- tokenizer

def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one word (end-of-word marker on the last symbol)."""
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        pair = (symbols[i], symbols[i + 1])
        merged: list[str] = []
        j = 0
        while j < len(symbols):
            if j < len(symbols) - 1 and (symbols[j], symbols[j + 1]) == pair:
                merged.append(symbols[j] + symbols[j + 1])
                j += 2
            else:
                merged.append(symbols[j])
                j += 1
        symbols = merged
    return symbols


def build_vocabulary(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte symbols, then greedy per-word merges so every word is one token, then the specials last."""
    byte_chars = list(bytes_to_unicode().values())
    vocab_list = byte_chars + [c + "</w>" for c in byte_chars]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in sorted(set(words)):
        while len(symbols := _bpe(word, ranks)) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab_list.append(pair[0] + pair[1])
    vocab_list += [BOS, EOS]
    return {token: i for i, token in enumerate(vocab_list)}, merges


def write_tokenizer(directory: Path, words: Iterable[str] = CAPTION_WORDS) -> CLIPTokenizer:
    """Write vocab.json, merges.txt and the configs to ``directory``; load and check them back."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocabulary(words)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = {"model_max_length": MAX_LENGTH, "bos_token": BOS, "eos_token": EOS, "pad_token": EOS,
              "unk_token": EOS, "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    specials = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2), encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(directory)
    check_tokenizer(tokenizer, words)
    return tokenizer


def check_tokenizer(tokenizer: CLIPTokenizer, words: Iterable[str] = CAPTION_WORDS) -> None:
    """Raise unless every caption word is a single token and the specials sit at the end."""
    bad = [w for w in words if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
    if bad:
        raise ValueError(f"words split into several tokens: {bad}")
    if tokenizer.eos_token_id != len(tokenizer) - 1 or tokenizer.model_max_length != MAX_LENGTH:
        raise ValueError("tokenizer specials or model_max_length are not as written")


# ---------------------------------------------------------------- models

def build_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                            **TEXT_CONFIG)
    return CLIPTextModel(config)


def build_vae() -> AutoencoderKL:
    return AutoencoderKL(**VAE_CONFIG)


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(**UNET_CONFIG)


def build_scheduler() -> DDIMScheduler:
    """Saved as DDIM so every key above lands in scheduler_config.json (the studio swaps the class)."""
    return DDIMScheduler(**SCHEDULER_CONFIG)


def build_controlnet(unet: UNet2DConditionModel) -> ControlNetModel:
    """A ControlNet copied from the UNet's encoder, zero-initialised outputs, 4x conditioning embedding."""
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING_CHANNELS)


def assemble_pipeline(vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                      unet: UNet2DConditionModel) -> StableDiffusionPipeline:
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=build_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def build_untrained_pipeline(tokenizer_dir: Path, seed: int = 0) -> StableDiffusionPipeline:
    """A correctly shaped, randomly initialised pipeline (tokenizer written to ``tokenizer_dir``)."""
    torch.manual_seed(seed)
    tokenizer = write_tokenizer(tokenizer_dir)
    return assemble_pipeline(build_vae(), build_text_encoder(tokenizer), tokenizer, build_unet())


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def component_sizes(modules: Sequence[tuple[str, torch.nn.Module]]) -> dict[str, int]:
    return {name: count_parameters(m) for name, m in modules}
