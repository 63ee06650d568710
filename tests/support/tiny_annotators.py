"""Tiny random detectors of the real architectures for transformers-run preprocessors: Depth-Anything
as the original repository's state dict (the file sd-webui-controlnet loads) and as a transformers folder."""
from __future__ import annotations

from pathlib import Path

import torch

_HIDDEN, _LAYERS = 64, 4


def tiny_depth_anything() -> torch.nn.Module:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=_HIDDEN, num_hidden_layers=_LAYERS, num_attention_heads=1,
                            mlp_ratio=2, image_size=518, patch_size=14,
                            out_indices=[1, 2, 3, 4], apply_layernorm=True, reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=_HIDDEN, patch_size=14,
                                 fusion_hidden_size=16, neck_hidden_sizes=[8, 16, 32, 32], head_hidden_size=8)
    return DepthAnythingForDepthEstimation(config).eval()


def _original_key(key: str) -> str | None:
    """transformers' key -> the original repository's (the inverse of studio.control.depth_anything's
    renames, written out independently so a wrong rename there fails the load)."""
    parts = key.split(".")
    if key.startswith("backbone.embeddings."):
        return {"cls_token": "pretrained.cls_token", "mask_token": "pretrained.mask_token",
                "position_embeddings": "pretrained.pos_embed"}.get(parts[2], "pretrained.patch_embed.proj." + parts[-1])
    if key.startswith("backbone.layernorm."):
        return "pretrained.norm." + parts[-1]
    if key.startswith("backbone.encoder.layer."):
        block, rest = parts[3], ".".join(parts[4:])
        rest = {"layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma"}.get(rest, rest)
        rest = rest.replace("attention.o_proj.", "attn.proj.")
        return None if "_proj" in rest else f"pretrained.blocks.{block}.{rest}"
    if key.startswith("neck.reassemble_stage.layers."):
        kind = {"projection": "projects", "resize": "resize_layers"}[parts[4]]
        return f"depth_head.{kind}.{parts[3]}.{parts[-1]}"
    if key.startswith("neck.convs."):
        return f"depth_head.scratch.layer{int(parts[2]) + 1}_rn.{parts[-1]}"
    if key.startswith("neck.fusion_stage.layers."):
        refinenet = 4 - int(parts[3])
        if parts[4] == "projection":
            return f"depth_head.scratch.refinenet{refinenet}.out_conv.{parts[-1]}"
        unit, conv = parts[4][-1], parts[5][-1]
        return f"depth_head.scratch.refinenet{refinenet}.resConfUnit{unit}.conv{conv}.{parts[-1]}"
    return {"head.conv1": "depth_head.scratch.output_conv1", "head.conv2": "depth_head.scratch.output_conv2.0",
            "head.conv3": "depth_head.scratch.output_conv2.2"}[".".join(parts[:2])] + "." + parts[-1]


def original_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    out = {original: value for key, value in state.items() if (original := _original_key(key)) is not None}
    for block in range(_LAYERS):
        prefix = f"backbone.encoder.layer.{block}.attention."
        for part in ("weight", "bias"):
            out[f"pretrained.blocks.{block}.attn.qkv.{part}"] = torch.cat(
                [state[f"{prefix}{name}.{part}"] for name in ("q_proj", "k_proj", "v_proj")])
    return out


def save_depth_anything_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(original_state(tiny_depth_anything()), folder / "depth_anything_vitl14.pth")
    return folder / "depth_anything_vitl14.pth"


def save_depth_anything_folder(folder: Path) -> Path:
    tiny_depth_anything().save_pretrained(folder / "depth-anything")
    return folder / "depth-anything"


def save_upernet_folder(folder: Path) -> Path:
    """A tiny UperNet (ConvNeXt backbone) with ADE20K's 150 classes, as models/.../upernet-ade20k/."""
    from transformers import ConvNextConfig, UperNetConfig, UperNetForSemanticSegmentation

    torch.manual_seed(0)
    backbone = ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=16, num_labels=150, use_auxiliary_head=False)
    UperNetForSemanticSegmentation(config).save_pretrained(folder / "upernet-ade20k")
    return folder / "upernet-ade20k"


def save_oneformer_folder(folder: Path) -> Path:
    """A tiny OneFormer (Swin backbone) with ADE20K's 150 classes and a CLIP tokenizer beside it, as the
    hub's shi-labs folders ship one, as models/.../oneformer-ade20k/."""
    from transformers import OneFormerConfig, OneFormerForUniversalSegmentation, SwinConfig

    from studio.default_model.components import write_tokenizer

    torch.manual_seed(0)
    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = OneFormerConfig(backbone_config=backbone, num_queries=8, conv_dim=32, mask_dim=32, hidden_dim=32,
                             encoder_feedforward_dim=32, encoder_layers=1, decoder_layers=2, num_attention_heads=1,
                             dim_feedforward=32, text_encoder_width=32, text_encoder_num_layers=1,
                             text_encoder_vocab_size=100, text_encoder_proj_layers=1, num_labels=150,
                             is_training=False)
    target = folder / "oneformer-ade20k"
    OneFormerForUniversalSegmentation(config).save_pretrained(target)
    write_tokenizer(target, ["the", "task", "is", "semantic"])
    return target


def save_clip_folder(folder: Path) -> Path:
    """A tiny random transformers CLIPModel with a CLIP tokenizer, as models/interrogate/<name>/."""
    from transformers import CLIPConfig, CLIPModel

    from studio.default_model.components import write_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(folder, ["a", "photograph", "painting", "red", "blue", "ball"])
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "projection_dim": 16},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8, "projection_dim": 16},
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    return folder


BLIP_WORDS = ("a", "picture", "of", "red", "ball", "on", "blue")


def save_blip_folder(folder: Path) -> Path:
    """A tiny random transformers BLIP captioner with a BERT tokenizer of a few words, as models/BLIP/<name>/."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BLIP_WORDS, "[DEC]"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]").save_pretrained(folder)
    torch.manual_seed(0)
    config = BlipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "encoder_hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 64,
                     "bos_token_id": vocab.index("[DEC]"), "sep_token_id": vocab.index("[SEP]"), "pad_token_id": 0,
                     "eos_token_id": vocab.index("[SEP]")},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    return folder
