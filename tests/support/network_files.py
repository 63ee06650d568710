"""Tiny random network files for the default model, written by tests (never shipped).

LoRAs in kohya/A1111 keys (`lora_unet_..._lora_down.weight`, `lora_up.weight`, `alpha`) with
and without conv layers (LoCon), in diffusers/peft keys (`unet....lora_A.weight`), a LyCORIS LoHa
(`hada_w1_a` ...), an SDXL-family LoRA; a textual inversion embedding; a second VAE.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

UNET_LINEAR = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
               "attn2.to_v", "attn2.to_out.0")
TE_LINEAR = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def _linear_targets(pipe: Any) -> dict[str, tuple[str, torch.nn.Module]]:
    """{kohya module name: (diffusers module path, module)} for attention and TE layers."""
    targets = {}
    for path, module in pipe.unet.named_modules():
        if "transformer_blocks" in path and any(path.endswith(s) for s in UNET_LINEAR):
            targets["lora_unet_" + path.replace(".", "_")] = ("unet." + path, module)
    for path, module in pipe.text_encoder.named_modules():
        if any(path.endswith(s) for s in TE_LINEAR):
            name = path if path.startswith("text_model.") else "text_model." + path
            targets["lora_te_" + name.replace(".", "_")] = ("text_encoder." + name, module)
    return targets


def _conv_targets(pipe: Any) -> dict[str, tuple[str, torch.nn.Module]]:
    return {"lora_unet_" + path.replace(".", "_"): ("unet." + path, module)
            for path, module in pipe.unet.named_modules()
            if "resnets" in path and path.endswith(("conv1", "conv2"))}


def kohya_lora(pipe: Any, path: Path, seed: int = 0, rank: int = 4, conv: bool = False, scale: float = 0.5,
               metadata: dict[str, str] | None = None) -> Path:
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    targets = {**_linear_targets(pipe), **(_conv_targets(pipe) if conv else {})}
    for name, (_, module) in targets.items():
        if isinstance(module, torch.nn.Conv2d):
            down = torch.randn(rank, module.in_channels, *module.kernel_size, generator=g)
            up = torch.randn(module.out_channels, rank, 1, 1, generator=g)
        else:
            down = torch.randn(rank, module.in_features, generator=g)
            up = torch.randn(module.out_features, rank, generator=g)
        state[f"{name}.lora_down.weight"] = down * scale / down.shape[1] ** 0.5
        state[f"{name}.lora_up.weight"] = up * scale
        state[f"{name}.alpha"] = torch.tensor(float(rank))
    save_file(state, str(path), metadata=metadata)
    return path


def peft_lora(pipe: Any, path: Path, seed: int = 1, rank: int = 4, scale: float = 0.5) -> Path:
    """diffusers' own LoRA layout (what `save_lora_weights` writes): unet.<module>.lora_A.weight."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for _, (module_path, module) in _linear_targets(pipe).items():
        down = torch.randn(rank, module.in_features, generator=g)
        state[f"{module_path}.lora_A.weight"] = down * scale / down.shape[1] ** 0.5
        state[f"{module_path}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=g) * scale
    save_file(state, str(path))
    return path


def loha_lora(pipe: Any, path: Path, seed: int = 2, rank: int = 2, scale: float = 0.1) -> Path:
    """LyCORIS LoHa: two low-rank products multiplied element-wise; alpha/rank scales it."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, (_, module) in _linear_targets(pipe).items():
        state[f"{name}.hada_w1_a"] = torch.randn(module.out_features, rank, generator=g) * scale
        state[f"{name}.hada_w1_b"] = torch.randn(rank, module.in_features, generator=g) * scale
        state[f"{name}.hada_w2_a"] = torch.randn(module.out_features, rank, generator=g) * scale
        state[f"{name}.hada_w2_b"] = torch.randn(rank, module.in_features, generator=g) * scale
        state[f"{name}.alpha"] = torch.tensor(float(rank))
    save_file(state, str(path))
    return path


def lokr_lora(pipe: Any, path: Path, seed: int = 5, rank: int = 2, factor: int = 4) -> Path:
    """LyCORIS LoKr: w1 (factor x factor) full, w2 as a low-rank product; alpha/rank scales it."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, (_, module) in _linear_targets(pipe).items():
        out_f, in_f = module.out_features, module.in_features
        if out_f % factor or in_f % factor:
            continue
        state[f"{name}.lokr_w1"] = torch.randn(factor, factor, generator=g) * 0.3
        state[f"{name}.lokr_w2_a"] = torch.randn(out_f // factor, rank, generator=g) * 0.3
        state[f"{name}.lokr_w2_b"] = torch.randn(rank, in_f // factor, generator=g) * 0.3
        state[f"{name}.alpha"] = torch.tensor(float(rank))
    save_file(state, str(path))
    return path


def sdxl_lora(path: Path, rank: int = 4) -> Path:
    """Keys and shapes of an SDXL LoRA (two text encoders, 2048-wide cross-attention)."""
    g = torch.Generator().manual_seed(3)
    state = {}
    for name, (out_f, in_f) in {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k": (640, 2048),
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q": (640, 640),
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": (1280, 1280),
    }.items():
        state[f"{name}.lora_down.weight"] = torch.randn(rank, in_f, generator=g) * 0.01
        state[f"{name}.lora_up.weight"] = torch.randn(out_f, rank, generator=g) * 0.01
        state[f"{name}.alpha"] = torch.tensor(float(rank))
    save_file(state, str(path))
    return path


def embedding(pipe: Any, path: Path, vectors: int = 2, seed: int = 4, fmt: str = "a1111") -> Path:
    """A textual inversion embedding: A1111 .safetensors ({"emb_params": [n, dim]}) or .pt
    ({"string_to_param": {"*": ...}, "name", "step", ...})."""
    g = torch.Generator().manual_seed(seed)
    dim = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    vectors_ = torch.randn(vectors, dim, generator=g) * 0.5
    if path.suffix == ".pt":
        torch.save({"string_to_param": {"*": vectors_}, "name": path.stem, "step": 500,
                    "sd_checkpoint": "abcdef0123", "sd_checkpoint_name": "studio-default-64px"}, path)
    else:
        save_file({"emb_params": vectors_}, str(path))
    return path


def random_vae(pipe: Any, seed: int = 5) -> Any:
    """A VAE with the model's config and perturbed weights (decodes visibly differently)."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_config(pipe.vae.config)
    vae.load_state_dict(pipe.vae.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in vae.decoder.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=g) * 0.02)
    return vae.eval()


def vae_folder(pipe: Any, folder: Path, seed: int = 5) -> Path:
    random_vae(pipe, seed).save_pretrained(folder, safe_serialization=True)
    return folder


def vae_single_file(pipe: Any, path: Path, seed: int = 6) -> Path:
    """The VAE in A1111's layout (LDM keys, as vae-ft-mse-840000-ema-pruned.safetensors)."""
    from tests.support.ldm_convert import convert_vae_state_dict

    vae = random_vae(pipe, seed)
    state = convert_vae_state_dict(vae.state_dict(), vae.config)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path
