"""The classifier the evaluation reads images with (colour, shape, background, position; no model)
and the held-out prompts it scores."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from PIL import Image

from .dataset import (
    BACKGROUNDS,
    PALETTE,
    POSITIONS,
    SHAPE_COLORS,
    SHAPES,
    article,
    make_sample,
)

EVAL_SEED = 777
TRAIN_SAMPLE = (1234, 2000)  # (DATA_SEED, count): held-out prompts never equal these captions


# ---------------------------------------------------------------- the classifier

@dataclass(frozen=True)
class Reading:
    background: str
    color: Optional[str]
    shape: Optional[str]
    cx: float
    cy: float
    area: int


def nearest(rgb: np.ndarray, names: Sequence[str]) -> str:
    return min(names, key=lambda n: float(np.sum((np.asarray(PALETTE[n], dtype=float) - rgb) ** 2)))


def border_rgb(arr: np.ndarray) -> np.ndarray:
    border = np.concatenate([arr[:2].reshape(-1, 3), arr[-2:].reshape(-1, 3),
                             arr[:, :2].reshape(-1, 3), arr[:, -2:].reshape(-1, 3)])
    return np.median(border, axis=0)


def foreground_mask(arr: np.ndarray, bg: np.ndarray, threshold: float = 50.0) -> np.ndarray:
    mask = (np.linalg.norm(arr - bg, axis=-1) > threshold).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))


def shape_kind(blob: np.ndarray) -> str:
    """Circle / square / triangle from the blob's fill of its bounding box and a polygon fit."""
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    x, y, w, h = cv2.boundingRect(contour)
    fill = float(blob.sum()) / max(1, w * h)
    vertices = len(cv2.approxPolyDP(contour, 0.05 * cv2.arcLength(contour, True), True))
    if fill >= 0.88:
        return "square"
    if fill <= 0.64:
        return "triangle"
    if vertices == 3 and fill < 0.72:
        return "triangle"
    if vertices == 4 and fill > 0.84:
        return "square"
    return "circle"


def classify(image: Image.Image) -> Reading:
    arr = np.asarray(image.convert("RGB"), dtype=float)
    bg = border_rgb(arr)
    background = nearest(bg, BACKGROUNDS)
    mask = foreground_mask(arr, bg)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return Reading(background, None, None, 32.0, 32.0, 0)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    area = int(stats[k, cv2.CC_STAT_AREA])
    if area < 16:
        return Reading(background, None, None, 32.0, 32.0, area)
    blob = (labels == k).astype(np.uint8)
    color = nearest(np.median(arr[blob.astype(bool)], axis=0), SHAPE_COLORS)
    cx, cy = centroids[k]
    return Reading(background, color, shape_kind(blob), float(cx), float(cy), area)


def position_ok(position: str, reading: Reading) -> bool:
    return {"on the left": reading.cx < 32, "on the right": reading.cx > 32,
            "at the top": reading.cy < 32, "at the bottom": reading.cy > 32}[position]


# ---------------------------------------------------------------- held-out prompts

@dataclass(frozen=True)
class PromptSpec:
    prompt: str
    color: str
    shape: str
    background: str
    position: Optional[str]


def _phrase(rng: np.random.Generator, c: str, s: str, b: str, pos: Optional[str]) -> str:
    """Phrasings of the training captions; the prompts themselves are checked against a training sample."""
    a, ab = article(c), article(b)
    if pos is None:
        templates = [f"{a} {c} {s} on {ab} {b} background", f"{c} {s}, {b} background", f"a {s}, {c}, on {b}",
                     f"{a} {c} {s} with {ab} {b} background",
                     f"{c} {s} on {ab} {b} background", f"{a} {c} {s}, {b} background",
                     f"{b} background, {a} {c} {s}", f"{s}, {c}, on {ab} {b} background"]
    else:
        templates = [f"{a} {c} {s} on {ab} {b} background, {pos}", f"{c} {s} {pos}, {b} background",
                     f"{a} {c} {s} {pos} on {b}", f"{b} background, {a} {c} {s} {pos}"]
    return str(rng.choice(templates))


def training_captions(seed: int, count: int) -> set[str]:
    return {make_sample(seed, i).caption for i in range(count)}


def eval_prompts(n: int = 60, seen: Optional[set[str]] = None) -> list[PromptSpec]:
    """``n`` prompts (a third with a position) that never occur in the fixed training sample.

    Colours and shapes cycle so each colour and shape is equally represented.
    """
    seen = training_captions(*TRAIN_SAMPLE) if seen is None else seen
    rng = np.random.default_rng(EVAL_SEED)
    specs: list[PromptSpec] = []
    i = 0
    while len(specs) < n:
        if i > 100 * n:
            raise RuntimeError("could not find enough held-out prompts")
        c, s = SHAPE_COLORS[i % len(SHAPE_COLORS)], SHAPES[(i // len(SHAPE_COLORS)) % len(SHAPES)]
        b = str(rng.choice([x for x in BACKGROUNDS if x != c]))
        pos = str(rng.choice(POSITIONS)) if i % 3 == 2 else None
        prompt = _phrase(rng, c, s, b, pos)
        i += 1
        if prompt not in seen and prompt not in {p.prompt for p in specs}:
            specs.append(PromptSpec(prompt, c, s, b, pos))
    return specs


