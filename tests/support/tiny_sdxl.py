"""Tiny random-weight SDXL base and refiner diffusers folders written by tests (diffusers' own test
configs, shrunk; the tokenizers are the embedded default model's CLIP tokenizer).

The base is a StableDiffusionXLPipeline (two text encoders, 6 time ids); the refiner a
StableDiffusionXLImg2ImgPipeline with the second text encoder only and the aesthetic score
(5 time ids), as stabilityai/stable-diffusion-xl-refiner-1.0 is laid out.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR

TIME_EMBED = 8
TEXT_DIM = 32


def _unet(cross_attention_dim: int, time_ids: int, sample_size: int = 8) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=sample_size, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=TIME_EMBED * time_ids + TEXT_DIM,
        cross_attention_dim=cross_attention_dim, norm_num_groups=1)


def _vae() -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=[32, 32], in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                         norm_num_groups=16, sample_size=16)


def _text_config(tokenizer: CLIPTokenizer) -> CLIPTextConfig:
    return CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, hidden_size=TEXT_DIM, intermediate_size=37,
                          num_attention_heads=4, num_hidden_layers=3, vocab_size=len(tokenizer),
                          projection_dim=TEXT_DIM, hidden_act="gelu")


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                  beta_schedule="scaled_linear", timestep_spacing="leading")


def _tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(DEFAULT_MODEL_DIR / "tokenizer")


def write_tiny_sdxl_base(folder: Path, seed: int = 0, sample_size: int = 8) -> Path:
    """`sample_size` x the VAE's factor 2 is the model's default size (8: 16 px, 64: 128 px)."""
    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    config = _text_config(tokenizer)
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(config), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(config), tokenizer_2=tokenizer,
        unet=_unet(2 * TEXT_DIM, 6, sample_size), scheduler=_scheduler())
    pipe.save_pretrained(folder)
    return folder


def write_tiny_sdxl_refiner(folder: Path, seed: int = 1) -> Path:
    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=_vae(), text_encoder=None, tokenizer=None,
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tokenizer)), tokenizer_2=tokenizer,
        unet=_unet(TEXT_DIM, 5), scheduler=_scheduler(), requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    pipe.save_pretrained(folder)
    return folder


def write_tiny_refiner_single_file(path: Path, configs: Path, seed: int = 2) -> Path:
    """A reduced random SDXL refiner as an original-layout single file (UNet `label_emb`, OpenCLIP
    bigG under `conditioner.embedders.0.model.`), and `configs/sdxl-refiner` shrunk to match it
    (`configs` is a copy of studio/checkpoints/configs/ that a test points single_file.SHIPPED_CONFIGS at)."""
    import json

    from safetensors.torch import save_file

    from tests.support.ldm_convert import (
        UNET_PREFIX,
        VAE_PREFIX,
        convert_unet_state_dict,
        convert_vae_state_dict,
        open_clip_text_state_dict,
    )

    folder = configs / "sdxl-refiner"
    text_config = json.loads((folder / "text_encoder_2" / "config.json").read_text())
    text_config.update(hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3,
                       projection_dim=TEXT_DIM)
    torch.manual_seed(seed)
    unet, vae = _unet(TEXT_DIM, 5), _vae()
    encoder = CLIPTextModelWithProjection(CLIPTextConfig(**{k: v for k, v in text_config.items() if not k.startswith("_")}))
    (folder / "text_encoder_2" / "config.json").write_text(json.dumps(text_config))
    (folder / "unet" / "config.json").write_text(json.dumps(dict(unet.config)))
    (folder / "vae" / "config.json").write_text(json.dumps(dict(vae.config)))
    unet_state = convert_unet_state_dict(unet.state_dict(), unet.config)
    for diffusers_name, ldm_name in (("add_embedding.linear_1.", "label_emb.0.0."), ("add_embedding.linear_2.", "label_emb.0.2.")):
        for kind in ("weight", "bias"):
            unet_state[ldm_name + kind] = unet_state.pop(diffusers_name + kind)
    text = open_clip_text_state_dict(encoder)
    text["text_projection"] = encoder.text_projection.weight.T.contiguous()
    text.pop("text_projection.weight", None)
    state = {**{UNET_PREFIX + k: v for k, v in unet_state.items()},
             **{VAE_PREFIX + k: v for k, v in convert_vae_state_dict(vae.state_dict(), vae.config).items()},
             **{"conditioner.embedders.0.model." + k: v for k, v in text.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))
    return path
