"""sd-webui-controlnet's `depth_anything` preprocessor, run by transformers' DepthAnythingForDepthEstimation.

The model comes from what the user placed under models/ControlNet/annotators/: either
sd-webui-controlnet's `depth_anything_vitl14.pth` (the original repository's state dict, renamed here
onto transformers' keys, its size read from the tensors' shapes) or a transformers-format folder
`depth-anything/` (config.json + model.safetensors). Nothing is downloaded.
"""
from __future__ import annotations

import functools
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

DETECT_SIZE = 518  # Depth-Anything's input: the shorter side at least 518, both sides multiples of 14
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# Original key -> transformers key (regex, replacement), applied in order; the attention's fused qkv
# is split separately. The original's refinenet1 is transformers' last fusion layer (see _fusion).
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^pretrained\.cls_token$", "backbone.embeddings.cls_token"),
    (r"^pretrained\.mask_token$", "backbone.embeddings.mask_token"),
    (r"^pretrained\.pos_embed$", "backbone.embeddings.position_embeddings"),
    (r"^pretrained\.patch_embed\.proj\.", "backbone.embeddings.patch_embeddings.projection."),
    (r"^pretrained\.blocks\.(\d+)\.ls(\d)\.gamma$", r"backbone.encoder.layer.\1.layer_scale\2.lambda1"),
    (r"^pretrained\.blocks\.(\d+)\.attn\.proj\.", r"backbone.encoder.layer.\1.attention.o_proj."),
    (r"^pretrained\.blocks\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.", r"backbone.encoder.layer.\1.\2."),
    (r"^pretrained\.norm\.", "backbone.layernorm."),
    (r"^depth_head\.projects\.(\d)\.", r"neck.reassemble_stage.layers.\1.projection."),
    (r"^depth_head\.resize_layers\.(\d)\.", r"neck.reassemble_stage.layers.\1.resize."),
    (r"^depth_head\.scratch\.layer(\d)_rn\.", "neck.convs.{layer}."),
    (r"^depth_head\.scratch\.refinenet(\d)\.out_conv\.", "neck.fusion_stage.layers.{fusion}.projection."),
    (r"^depth_head\.scratch\.refinenet(\d)\.resConfUnit(\d)\.conv(\d)\.",
     r"neck.fusion_stage.layers.{fusion}.residual_layer\2.convolution\3."),
    (r"^depth_head\.scratch\.output_conv1\.", "head.conv1."),
    (r"^depth_head\.scratch\.output_conv2\.0\.", "head.conv2."),
    (r"^depth_head\.scratch\.output_conv2\.2\.", "head.conv3."),
)


def _rename(key: str) -> str | None:
    for pattern, replacement in _RENAMES:
        match = re.match(pattern, key)
        if match:
            number = int(match.group(1)) if match.groups() else 0
            new = re.sub(pattern, replacement, key)
            return new.replace("{layer}", str(number - 1)).replace("{fusion}", str(4 - number))
    return None


def to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original repository's state dict -> DepthAnythingForDepthEstimation's keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        fused = re.match(r"^pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        if fused:
            prefix = f"backbone.encoder.layer.{fused.group(1)}.attention"
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{prefix}.{name}.{fused.group(2)}"] = part.clone()
            continue
        new = _rename(key)
        if new is not None:
            out[new] = value
    return out


def config_from_state(state: dict[str, torch.Tensor]) -> Any:
    """A DepthAnythingConfig sized from the original state dict's shapes (vits14, vitb14, vitl14 alike)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    hidden = state["pretrained.cls_token"].shape[-1]
    layers = len({key.split(".")[2] for key in state if key.startswith("pretrained.blocks.")})
    patch = state["pretrained.patch_embed.proj.weight"].shape[-1]
    tokens = state["pretrained.pos_embed"].shape[1] - 1
    backbone = Dinov2Config(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),  # DINOv2: 64 per head
        mlp_ratio=state["pretrained.blocks.0.mlp.fc1.weight"].shape[0] // hidden, patch_size=patch,
        image_size=round(math.sqrt(tokens)) * patch, out_indices=list(range(layers - 3, layers + 1)),
        apply_layernorm=True, reshape_hidden_states=False)
    return DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=hidden, patch_size=patch,
        neck_hidden_sizes=[state[f"depth_head.projects.{i}.weight"].shape[0] for i in range(4)],
        fusion_hidden_size=state["depth_head.scratch.layer1_rn.weight"].shape[0],
        head_hidden_size=state["depth_head.scratch.output_conv2.0.weight"].shape[0])


@functools.lru_cache(maxsize=1)
def _load(path: str, stamp: int) -> Any:
    from transformers import DepthAnythingForDepthEstimation

    if Path(path).is_dir():
        return DepthAnythingForDepthEstimation.from_pretrained(path, local_files_only=True).eval()
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        model = DepthAnythingForDepthEstimation(config_from_state(state))
    except KeyError as error:
        raise ValueError(f"{Path(path).name} is not a Depth-Anything state dict (no {error})") from error
    missing, _ = model.load_state_dict(to_transformers(state), strict=False)
    if missing:
        raise ValueError(f"{Path(path).name} lacks {len(missing)} Depth-Anything weights (e.g. {missing[0]})")
    return model.eval()


def load(path: Path) -> Any:
    """The model in `path` (file or folder), kept while the same file is used again; ValueError (the
    request's error, naming the file) when it cannot be read."""
    try:
        return _load(str(path), path.stat().st_mtime_ns)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path.name} could not be loaded as Depth-Anything: {str(error).splitlines()[0][:300]}") \
            from error


def _input(image: Image.Image, multiple: int) -> torch.Tensor:
    """Depth-Anything's transform: scaled so the shorter side is >= 518, sides multiples of 14, normalised."""
    width, height = image.size
    scale = DETECT_SIZE / min(width, height)
    size = [max(multiple, math.ceil(side * scale / multiple) * multiple) for side in (width, height)]
    resized = image.convert("RGB").resize((size[0], size[1]), Image.BICUBIC)
    pixels = (np.asarray(resized, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32))[None]


def depth_anything(image: Image.Image, a: float, b: float, weights: Path) -> Image.Image:
    """Relative depth (near = bright), min-max scaled to 0..255 in grey, as sd-webui-controlnet draws it."""
    model = load(weights)
    multiple = int(model.config.patch_size)
    with torch.inference_mode():
        depth = model(pixel_values=_input(image, multiple).to(model.dtype)).predicted_depth
        depth = torch.nn.functional.interpolate(depth[:, None].float(), (image.height, image.width),
                                                mode="bilinear", align_corners=False)[0, 0]
    span = float(depth.max() - depth.min())
    scaled = (depth - depth.min()) / span * 255.0 if span > 0 else torch.zeros_like(depth)
    return Image.fromarray(scaled.clamp(0, 255).to(torch.uint8).numpy()).convert("RGB")
