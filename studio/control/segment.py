"""sd-webui-controlnet's ADE20K segmentation preprocessors (seg_ofade20k, seg_ufade20k), run by
transformers' OneFormer / UperNet from a transformers-format folder the user placed under
models/ControlNet/annotators/ (config.json + model.safetensors; OneFormer's tokenizer files too, as
its hub folders ship them). Each pixel is coloured with its ADE20K class's colour (controlnet-aux's
ade_palette, the one sd-webui-controlnet draws with). sd-webui-controlnet's own .pth files are
detectron2 / mmseg checkpoints that transformers cannot read; nothing is downloaded.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from studio.control.aux import import_aux

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TASK = "the task is semantic"  # OneFormer's task prompt for semantic segmentation
MULTIPLE = 32  # Swin / ConvNeXt backbones downsample by 32


@functools.lru_cache(maxsize=1)
def _load(folder: str, stamp: int) -> tuple[Any, Any]:
    """(model, OneFormer task inputs or None) from a transformers folder."""
    model_type = json.loads((Path(folder) / "config.json").read_text()).get("model_type")
    if model_type == "oneformer":
        from transformers import AutoTokenizer, OneFormerForUniversalSegmentation

        model = OneFormerForUniversalSegmentation.from_pretrained(folder, local_files_only=True).eval()
        tokens = AutoTokenizer.from_pretrained(folder, local_files_only=True)(
            [TASK], padding="max_length", max_length=model.config.task_seq_len, truncation=True)
        # OneFormer's processor: the ids where the mask is 1, 0 elsewhere
        task = torch.tensor(tokens["input_ids"]) * torch.tensor(tokens["attention_mask"])
        return model, task
    if model_type == "upernet":
        from transformers import UperNetForSemanticSegmentation

        return UperNetForSemanticSegmentation.from_pretrained(folder, local_files_only=True).eval(), None
    raise ValueError(f"{Path(folder).name}/config.json is a {model_type!r} model; "
                     "a OneFormer or UperNet segmentation model is needed")


def _pixels(image: Image.Image) -> torch.Tensor:
    size = [max(MULTIPLE, math.ceil(side / MULTIPLE) * MULTIPLE) for side in image.size]
    resized = image.convert("RGB").resize((size[0], size[1]), Image.BICUBIC)
    pixels = (np.asarray(resized, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32))[None]


def class_map(image: Image.Image, folder: Path) -> np.ndarray:
    """The ADE20K class index of every pixel (height, width)."""
    try:
        model, task = _load(str(folder), (folder / "config.json").stat().st_mtime_ns)
    except (OSError, RuntimeError, KeyError) as error:  # a partial folder: the request's error, naming it
        raise ValueError(f"{folder.name}/ could not be loaded: {str(error).splitlines()[0][:300]}") from error
    pixels = _pixels(image).to(model.dtype)
    with torch.inference_mode():
        if task is not None:
            out = model(pixel_values=pixels, task_inputs=task.to(model.dtype))
            classes = out.class_queries_logits.softmax(dim=-1)[..., :-1]  # without the "no object" class
            scores = torch.einsum("bqc,bqhw->bchw", classes, out.masks_queries_logits.sigmoid())
        else:
            scores = model(pixel_values=pixels).logits
        scores = torch.nn.functional.interpolate(scores.float(), (image.height, image.width), mode="bilinear",
                                                 align_corners=False)
    return scores[0].argmax(dim=0).numpy()


def segment(image: Image.Image, a: float, b: float, folder: Path) -> Image.Image:
    """The class map in ADE20K colours, as sd-webui-controlnet's seg preprocessors draw it."""
    palette = np.asarray(import_aux("controlnet_aux.util").ade_palette(), dtype=np.uint8)
    return Image.fromarray(palette[class_map(image, folder) % len(palette)])
