# Ported from Hugging Face diffusers, scripts/convert_diffusers_to_original_stable_diffusion.py
# (https://github.com/huggingface/diffusers), Copyright The HuggingFace Team,
# licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
# Changes from the original: the block maps are built from the component configs instead of
# being hard-coded for SD 1.x (so tiny test models with other block counts convert too), VAE
# attention uses today's diffusers names (to_q/to_k/to_v/to_out.0), the text encoder gets
# the `text_model.` prefix that transformers >= 5.6 no longer puts in CLIPTextModel's state
# dict, the SD 2.x OpenCLIP path is chosen by a flag (not the file name), and the CLI is left out.
"""Diffusers StableDiffusionPipeline -> original LDM single-file layout (test support only).

Keys with no LDM counterpart (e.g. a UNet `add_embedding` of type "text") keep their diffusers
name under `model.diffusion_model.`, as the original script does for anything it does not map.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."

# =================#
# UNet Conversion #
# =================#

# (stable-diffusion, HF Diffusers)
UNET_CONVERSION_MAP = [
    ("time_embed.0.weight", "time_embedding.linear_1.weight"),
    ("time_embed.0.bias", "time_embedding.linear_1.bias"),
    ("time_embed.2.weight", "time_embedding.linear_2.weight"),
    ("time_embed.2.bias", "time_embedding.linear_2.bias"),
    ("input_blocks.0.0.weight", "conv_in.weight"),
    ("input_blocks.0.0.bias", "conv_in.bias"),
    ("out.0.weight", "conv_norm_out.weight"),
    ("out.0.bias", "conv_norm_out.bias"),
    ("out.2.weight", "conv_out.weight"),
    ("out.2.bias", "conv_out.bias"),
]

UNET_CONVERSION_MAP_RESNET = [
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("emb_layers.1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
]


def unet_layer_map(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The original's hard-coded SD 1.x loops, with block counts and attention taken from config."""
    n_blocks = len(config["down_block_types"])
    per_block = int(config["layers_per_block"])
    stride = per_block + 1  # each LDM level also holds its down/upsampler
    pairs: list[tuple[str, str]] = []
    for i, block in enumerate(config["down_block_types"]):
        for j in range(per_block):
            pairs.append((f"input_blocks.{stride * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if "CrossAttn" in block:
                pairs.append((f"input_blocks.{stride * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        if i < n_blocks - 1:
            pairs.append((f"input_blocks.{stride * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
    for i, block in enumerate(config["up_block_types"]):
        has_attention = "CrossAttn" in block
        for j in range(per_block + 1):
            pairs.append((f"output_blocks.{stride * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if has_attention:
                pairs.append((f"output_blocks.{stride * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < n_blocks - 1:
            # The upsampler follows the attention when the level has one (SD 1.x: all but up_blocks.0).
            slot = 2 if has_attention else 1
            pairs.append((f"output_blocks.{stride * i + per_block}.{slot}.", f"up_blocks.{i}.upsamplers.0."))
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        pairs.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    return pairs


def convert_unet_state_dict(unet_state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    # buyer beware (as upstream): correct output relies on the order of these replacements.
    mapping = {k: k for k in unet_state_dict.keys()}
    for sd_name, hf_name in UNET_CONVERSION_MAP:
        if hf_name in mapping:
            mapping[hf_name] = sd_name
    for k, v in mapping.items():
        if "resnets" in k:
            for sd_part, hf_part in UNET_CONVERSION_MAP_RESNET:
                v = v.replace(hf_part, sd_part)
            mapping[k] = v
    layer_map = unet_layer_map(config)
    for k, v in mapping.items():
        for sd_part, hf_part in layer_map:
            v = v.replace(hf_part, sd_part)
        mapping[k] = v
    return {v: unet_state_dict[k] for k, v in mapping.items()}


# ================#
# VAE Conversion #
# ================#


def vae_conversion_map(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    n_blocks = len(config["down_block_types"])
    per_block = int(config["layers_per_block"])
    pairs = [
        ("nin_shortcut", "conv_shortcut"),
        ("norm_out", "conv_norm_out"),
        ("mid.attn_1.", "mid_block.attentions.0."),
    ]
    for i in range(n_blocks):
        for j in range(per_block):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < n_blocks - 1:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{n_blocks - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        # decoder levels have one resnet more and are numbered in reverse from sd
        for j in range(per_block + 1):
            pairs.append((f"decoder.up.{n_blocks - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        pairs.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    return pairs


VAE_CONVERSION_MAP_ATTN = [
    ("norm.", "group_norm."),
    ("q.", "to_q."),
    ("k.", "to_k."),
    ("v.", "to_v."),
    ("proj_out.", "to_out.0."),
    # names of diffusers < 0.14, kept from the original
    ("q.", "query."),
    ("k.", "key."),
    ("v.", "value."),
    ("proj_out.", "proj_attn."),
]


def reshape_weight_for_sd(w: torch.Tensor) -> torch.Tensor:
    # convert HF linear weights to SD conv2d weights
    return w.reshape(*w.shape, 1, 1)


def convert_vae_state_dict(vae_state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    mapping = {k: k for k in vae_state_dict.keys()}
    conversion_map = vae_conversion_map(config)
    for k, v in mapping.items():
        for sd_part, hf_part in conversion_map:
            v = v.replace(hf_part, sd_part)
        mapping[k] = v
    for k, v in mapping.items():
        if "attentions" in k:
            for sd_part, hf_part in VAE_CONVERSION_MAP_ATTN:
                v = v.replace(hf_part, sd_part)
            mapping[k] = v
    new_state_dict = {v: vae_state_dict[k] for k, v in mapping.items()}
    for k, v in new_state_dict.items():
        for weight_name in ("q", "k", "v", "proj_out"):
            if f"mid.attn_1.{weight_name}.weight" in k and v.ndim == 2:
                new_state_dict[k] = reshape_weight_for_sd(v)
    return new_state_dict


# =========================#
# Text Encoder Conversion #
# =========================#


def convert_text_enc_state_dict(text_enc_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # SD 1.x keeps the transformers CLIPTextModel names, which carried `text_model.` before 5.6.
    return {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in text_enc_dict.items()}


# (stable-diffusion, HF Diffusers): SD 2.x's OpenCLIP text tower
TEXTENC_CONVERSION_LST = [
    ("resblocks.", "text_model.encoder.layers."),
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    (".c_fc.", ".fc1."),
    (".c_proj.", ".fc2."),
    (".attn", ".self_attn"),
    ("ln_final.", "transformer.text_model.final_layer_norm."),
    ("token_embedding.weight", "transformer.text_model.embeddings.token_embedding.weight"),
    ("positional_embedding", "transformer.text_model.embeddings.position_embedding.weight"),
]
PROTECTED = {re.escape(x[1]): x[0] for x in TEXTENC_CONVERSION_LST}
TEXTENC_PATTERN = re.compile("|".join(PROTECTED.keys()))
CODE2IDX = {"q": 0, "k": 1, "v": 2}


def convert_text_enc_state_dict_v20(text_enc_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    new_state_dict: dict[str, torch.Tensor] = {}
    capture: dict[str, dict[str, list[torch.Tensor | None]]] = {"weight": {}, "bias": {}}
    for k, v in text_enc_dict.items():
        match = re.search(r"\.self_attn\.([qkv])_proj\.(weight|bias)$", k)
        if match:
            k_pre = k[: match.start()] + ".self_attn"
            capture[match.group(2)].setdefault(k_pre, [None, None, None])[CODE2IDX[match.group(1)]] = v
            continue
        new_state_dict[TEXTENC_PATTERN.sub(lambda m: PROTECTED[re.escape(m.group(0))], k)] = v
    for kind, captured in capture.items():
        for k_pre, tensors in captured.items():
            if any(t is None for t in tensors):
                raise ValueError("CORRUPTED MODEL: one of the q-k-v values for the text encoder was missing")
            relabelled = TEXTENC_PATTERN.sub(lambda m: PROTECTED[re.escape(m.group(0))], k_pre)
            new_state_dict[f"{relabelled}.in_proj_{kind}"] = torch.cat(tensors)  # type: ignore[arg-type]
    return new_state_dict


def open_clip_text_state_dict(text_encoder: Any) -> dict[str, torch.Tensor]:
    """A CLIPTextModel as SD 2.x's `cond_stage_model.model.*` keys (with a text_projection, as the
    OpenCLIP tower carries one)."""
    text = convert_text_enc_state_dict(text_encoder.state_dict())
    converted = convert_text_enc_state_dict_v20({"transformer." + k: v for k, v in text.items()
                                                 if not k.startswith("text_model.text_projection")})
    hidden = text_encoder.config.hidden_size
    converted["text_projection"] = torch.eye(hidden)
    return converted


# ===========#
# Pipeline  #
# ===========#


def pipeline_to_ldm(pipe: Any, open_clip: bool = False) -> dict[str, torch.Tensor]:
    """UNet, VAE and text encoder of a StableDiffusionPipeline as one LDM state dict
    (`open_clip`: the SD 2.x layout of the text encoder)."""
    unet = convert_unet_state_dict(pipe.unet.state_dict(), pipe.unet.config)
    vae = convert_vae_state_dict(pipe.vae.state_dict(), pipe.vae.config)
    if open_clip:
        text, prefix = open_clip_text_state_dict(pipe.text_encoder), OPEN_CLIP_PREFIX
    else:
        text, prefix = convert_text_enc_state_dict(pipe.text_encoder.state_dict()), TEXT_PREFIX
    return {
        **{UNET_PREFIX + k: v for k, v in unet.items()},
        **{VAE_PREFIX + k: v for k, v in vae.items()},
        **{prefix + k: v for k, v in text.items()},
    }


def save_single_file(pipe: Any, path: Path, dtype: torch.dtype | None = None, open_clip: bool = False) -> Path:
    """Write `pipe` as an original-layout .safetensors checkpoint (optionally cast to `dtype`)."""
    state = pipeline_to_ldm(pipe, open_clip)
    # safetensors refuses shared or non-contiguous storage; the VAE reshapes are views.
    state = {k: (v.to(dtype) if dtype is not None else v).detach().contiguous().clone() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
