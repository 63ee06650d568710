"""A1111's CLIP interrogator: a caption by a transformers BLIP model when the user placed one (none is
needed), then the image ranked against category lists (artists, flavors, mediums, movements;
`name.topN.txt` keeps the N best, as A1111 names them) by a transformers CLIPModel the user placed
in a folder, the best items joined with ", ".

The lists are the user's `*.txt` under models/interrogate/ when there are any, else the small ones
shipped beside this module. Scores follow A1111's `rank`: the softmax of 100 x cosine similarity.
"""
from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

SHIPPED_LISTS = Path(__file__).with_name("interrogate_lists")
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
_TOPN = re.compile(r"\.top(\d+)$")
_TEXT_BATCH = 256  # list items encoded at once (A1111's flavour list has ~100k characters)
_lock = threading.Lock()  # one interrogation at a time: the model is shared


@dataclass(frozen=True)
class Category:
    name: str
    topn: int
    items: tuple[str, ...]


def categories(folder: Path) -> list[Category]:
    """The `*.txt` lists in `folder` (A1111's interrogate/ files), by file name, blank lines dropped."""
    found = []
    for path in sorted(folder.glob("*.txt")):
        items = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        match = _TOPN.search(path.stem)
        if items:
            found.append(Category(path.stem, int(match.group(1)) if match else 1, items))
    return found


@functools.lru_cache(maxsize=1)
def _load(folder: str, stamp: int) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _pixels(image: Image.Image, size: int) -> torch.Tensor:
    """CLIP's transform: the shorter side to `size` (bicubic), a centred square, CLIP's mean and std."""
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    resized = image.convert("RGB").resize((width, height), Image.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    square = resized.crop((left, top, left + size, top + size))
    pixels = (np.asarray(square, dtype=np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD
    return torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32))[None]


def _text_features(model: Any, tokenizer: Any, items: tuple[str, ...]) -> torch.Tensor:
    length = int(model.config.text_config.max_position_embeddings)
    parts = []
    for start in range(0, len(items), _TEXT_BATCH):
        tokens = tokenizer(list(items[start:start + _TEXT_BATCH]), padding=True, truncation=True,
                           max_length=length, return_tensors="pt")
        parts.append(_unit(_features(model.get_text_features(**tokens))))
    return torch.cat(parts)


def _features(output: Any) -> torch.Tensor:
    """transformers 5 may return an output object where 4.x returned the projected tensor."""
    return output if torch.is_tensor(output) else output.pooler_output


def _unit(features: torch.Tensor) -> torch.Tensor:
    return features / features.norm(dim=-1, keepdim=True)


def rank(image_features: torch.Tensor, text_features: torch.Tensor, items: tuple[str, ...],
         topn: int) -> list[tuple[str, float]]:
    """The `topn` best items with A1111's score (percent of the softmax over the list)."""
    similarity = (100.0 * image_features @ text_features.T).softmax(dim=-1)[0]
    probs, labels = similarity.topk(min(topn, len(items)))
    return [(items[int(label)], float(prob) * 100) for prob, label in zip(probs, labels)]


@functools.lru_cache(maxsize=1)
def _load_blip(folder: str, stamp: int) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, BlipForConditionalGeneration

    model = BlipForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def caption(image: Image.Image, blip_folder: Path, min_length: int = 24, max_length: int = 48) -> str:
    """BLIP's greedy caption (A1111's defaults: one beam, 24 to 48 tokens)."""
    model, tokenizer = _load_blip(str(blip_folder), (blip_folder / "config.json").stat().st_mtime_ns)
    pixels = _pixels(image, int(model.config.vision_config.image_size)).to(model.dtype)
    ids = model.generate(pixel_values=pixels, num_beams=1, do_sample=False, min_length=min_length,
                         max_length=max_length)
    return tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def interrogate(image: Image.Image, clip_folder: Path, lists: Path, with_ranks: bool = False,
                blip_folder: Path | None = None) -> str:
    """The caption (with a BLIP folder) and the best items of every list, ", "-joined (A1111's
    `(item:score)` form with `with_ranks`)."""
    with _lock, torch.inference_mode():
        words = [caption(image, blip_folder)] if blip_folder is not None else []
        model, tokenizer = _load(str(clip_folder), (clip_folder / "config.json").stat().st_mtime_ns)
        pixels = _pixels(image, int(model.config.vision_config.image_size)).to(model.dtype)
        image_features = _unit(_features(model.get_image_features(pixel_values=pixels)))
        for category in categories(lists):
            text_features = _text_features(model, tokenizer, category.items)
            for item, score in rank(image_features, text_features, category.items, category.topn):
                words.append(f"({item}:{score / 100:.3f})" if with_ranks else item)
    return ", ".join(word for word in words if word)
