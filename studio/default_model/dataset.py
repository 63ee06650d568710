"""The procedural, seeded training data: flat shapes and stick figures at 64x64, captions, controls.

``make_sample(seed, index)`` is a pure function: the same (seed, index) always gives the same scene,
so training is resumable by step and the evaluation's held-out check is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from PIL import Image

from studio.control.edges import canny, scribble_from_image
from studio.control.pose import LIMBS, Point, render_pose

SIZE = 64

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "blue": (30, 80, 220),
    "purple": (140, 50, 180),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
}
SHAPE_COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")
BACKGROUNDS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
FIGURE_NOUNS: tuple[str, ...] = ("person", "figure")
POSITIONS: tuple[str, ...] = ("on the left", "on the right", "at the top", "at the bottom")

CAPTION_WORDS: tuple[str, ...] = tuple(sorted(set(
    list(PALETTE) + list(SHAPES) + list(FIGURE_NOUNS)
    + "a an on at the of in with and background left right top bottom center middle stick man "
      "image picture photo drawing shape grey".split()
)))

FIGURE_FRACTION = 0.2


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    caption: str
    kind: str  # a shape name or "figure"
    color: str
    background: str
    position: Optional[str]  # one of POSITIONS when the caption may state it, else None
    outline: tuple[tuple[float, float], ...]  # shape polygon (pixels); empty for figures
    keypoints: tuple[Point, ...]  # 18 OpenPose keypoints for figures; empty for shapes


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


# ---------------------------------------------------------------- geometry

def shape_outline(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Outline polygon of a shape of 'radius' r centred at (cx, cy) (circle as a 48-gon)."""
    if kind == "circle":
        return [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)]
    if kind == "square":
        h = r * 0.9
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if kind == "triangle":
        h = r * 1.1
        return [(cx, cy - h), (cx + h * 1.05, cy + h * 0.8), (cx - h * 1.05, cy + h * 0.8)]
    raise ValueError(f"unknown shape {kind!r}")


def position_of(cx: float, cy: float) -> Optional[str]:
    """The caption's position phrase when the centre is clearly off-centre along one axis."""
    dx, dy = cx - SIZE / 2, cy - SIZE / 2
    if max(abs(dx), abs(dy)) < 8 or abs(abs(dx) - abs(dy)) < 4:
        return None
    if abs(dx) > abs(dy):
        return "on the left" if dx < 0 else "on the right"
    return "at the top" if dy < 0 else "at the bottom"


def random_pose(rng: np.random.Generator) -> list[tuple[float, float]]:
    """18 OpenPose keypoints of a random stick-figure pose, in pixels."""
    h = rng.uniform(34, 56)
    cx = rng.uniform(h * 0.3, SIZE - h * 0.3)
    top = rng.uniform(2, SIZE - h - 2)

    def polar(p: tuple[float, float], length: float, deg: float) -> tuple[float, float]:
        a = math.radians(deg)
        return (p[0] + length * math.sin(a), p[1] + length * math.cos(a))  # 0 deg = straight down

    nose = (cx + rng.uniform(-1, 1), top + 0.09 * h)
    neck = (cx, top + 0.2 * h)
    r_sh, l_sh = (cx - 0.11 * h, neck[1] + 0.01 * h), (cx + 0.11 * h, neck[1] + 0.01 * h)
    arm_up, fore = 0.16 * h, 0.15 * h
    ra = rng.uniform(-20, 170)  # right arm hangs at 0, rises to the side/up with larger angles
    la = rng.uniform(-20, 170)
    r_el = polar(r_sh, arm_up, -ra)
    r_wr = polar(r_el, fore, -ra - rng.uniform(-40, 40))
    l_el = polar(l_sh, arm_up, la)
    l_wr = polar(l_el, fore, la + rng.uniform(-40, 40))
    hip_y = neck[1] + 0.32 * h
    r_hip, l_hip = (cx - 0.06 * h, hip_y), (cx + 0.06 * h, hip_y)
    thigh, shin = 0.24 * h, 0.23 * h
    rl, ll = rng.uniform(-5, 40), rng.uniform(-5, 40)
    r_kn = polar(r_hip, thigh, -rl)
    r_an = polar(r_kn, shin, -rl + rng.uniform(-25, 15))
    l_kn = polar(l_hip, thigh, ll)
    l_an = polar(l_kn, shin, ll - rng.uniform(-25, 15))
    r_eye, l_eye = (nose[0] - 0.03 * h, nose[1] - 0.025 * h), (nose[0] + 0.03 * h, nose[1] - 0.025 * h)
    r_ear, l_ear = (nose[0] - 0.06 * h, nose[1] - 0.01 * h), (nose[0] + 0.06 * h, nose[1] - 0.01 * h)
    return [nose, neck, r_sh, r_el, r_wr, l_sh, l_el, l_wr, r_hip, r_kn, r_an, l_hip, l_kn, l_an,
            r_eye, l_eye, r_ear, l_ear]


# ---------------------------------------------------------------- drawing

def _canvas(background: str) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), PALETTE[background], dtype=np.uint8)


def _fixed(points: list[tuple[float, float]]) -> np.ndarray:
    return np.round(np.asarray(points) * 16).astype(np.int32)  # 4 fractional bits for cv2


def draw_shape(outline: list[tuple[float, float]], color: str, background: str) -> np.ndarray:
    canvas = _canvas(background)
    cv2.fillPoly(canvas, [_fixed(outline)], PALETTE[color], lineType=cv2.LINE_AA, shift=4)
    return canvas


def figure_width(keypoints: list[tuple[float, float]]) -> int:
    height = max(p[1] for p in keypoints) - min(p[1] for p in keypoints)
    return max(2, round(height * 0.075))


def draw_figure(keypoints: list[tuple[float, float]], color: str, background: str) -> np.ndarray:
    """A stick person: thick limbs along the body limbs and a filled round head."""
    canvas = _canvas(background)
    rgb = PALETTE[color]
    width = figure_width(keypoints)
    body_limbs = [pair for pair in LIMBS if 14 not in pair and 15 not in pair and 16 not in pair and 17 not in pair]
    for a, b in body_limbs:
        if (a, b) == (1, 0):
            continue
        pa, pb = _fixed([keypoints[a], keypoints[b]])
        cv2.line(canvas, tuple(pa), tuple(pb), rgb, width, lineType=cv2.LINE_AA, shift=4)
    mid_hip = ((keypoints[8][0] + keypoints[11][0]) / 2, (keypoints[8][1] + keypoints[11][1]) / 2)
    pa, pb = _fixed([keypoints[1], mid_hip])
    cv2.line(canvas, tuple(pa), tuple(pb), rgb, width + 1, lineType=cv2.LINE_AA, shift=4)
    head_r = abs(keypoints[1][1] - keypoints[0][1]) * 1.0
    (hx, hy), = _fixed([keypoints[0]])
    cv2.circle(canvas, (int(hx), int(hy)), int(head_r * 16), rgb, -1, lineType=cv2.LINE_AA, shift=4)
    return canvas


# ---------------------------------------------------------------- captions

def shape_caption(rng: np.random.Generator, color: str, noun: str, background: str,
                  position: Optional[str]) -> str:
    """One of several phrasings; the background and the position are each sometimes omitted."""
    a = article(color)
    bg = "grey" if background == "gray" and rng.random() < 0.3 else background
    with_bg = rng.random() < 0.8
    templates_bg = [
        f"{a} {color} {noun} on {article(bg)} {bg} background",
        f"{color} {noun}, {bg} background",
        f"a {noun}, {color}, on {bg}",
        f"{color} {noun} on {bg}",
        f"{a} {color} {noun} on {bg}",
        f"{noun}, {color}, {bg} background",
        f"{a} {color} {noun} with {article(bg)} {bg} background",
        f"{color} {noun} on {article(bg)} {bg} background",
        f"{a} {color} {noun}, {bg} background",
        f"{bg} background, {a} {color} {noun}",
        f"{noun}, {color}, on {article(bg)} {bg} background",
    ]
    templates_plain = [f"{a} {color} {noun}", f"{color} {noun}", f"a {noun}, {color}"]
    caption = str(rng.choice(templates_bg if with_bg else templates_plain))
    if position is not None and rng.random() < 0.6:
        caption = f"{caption}, {position}" if rng.random() < 0.5 else caption.replace(
            f"{color} {noun}", f"{color} {noun} {position}", 1) if f"{color} {noun}" in caption \
            else f"{caption}, {position}"
    return caption


# ---------------------------------------------------------------- samples

def make_sample(seed: int, index: int, figure: Optional[bool] = None) -> Sample:
    """The index-th scene of the stream ``seed``; ``figure`` forces a figure (True) or a shape (False)."""
    rng = _rng(seed, index)
    color = str(rng.choice(SHAPE_COLORS))
    background = str(rng.choice([b for b in BACKGROUNDS if b != color]))
    is_figure = rng.random() < FIGURE_FRACTION
    if figure if figure is not None else is_figure:
        keypoints = random_pose(rng)
        image = draw_figure(keypoints, color, background)
        noun = str(rng.choice(FIGURE_NOUNS))
        noun = "stick figure" if noun == "figure" and rng.random() < 0.3 else noun
        caption = shape_caption(rng, color, noun, background, None)
        return Sample(Image.fromarray(image), caption, "figure", color, background, None, (), tuple(keypoints))
    kind = str(rng.choice(SHAPES))
    r = rng.uniform(8, 20)
    cx, cy = rng.uniform(r + 1, SIZE - r - 1, size=2)
    outline = shape_outline(kind, cx, cy, r)
    image = draw_shape(outline, color, background)
    position = position_of(cx, cy)
    caption = shape_caption(rng, color, kind, background, position)
    return Sample(Image.fromarray(image), caption, kind, color, background, position, tuple(outline), ())


def _jitter_polyline(rng: np.random.Generator, points: np.ndarray, amount: float) -> np.ndarray:
    """Resample a polyline densely and add smooth random wobble (a hand-drawn look)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    n = max(8, int(seg.sum() / 2))
    t = np.concatenate([[0], np.cumsum(seg)])
    s = np.linspace(0, t[-1], n)
    dense = np.stack([np.interp(s, t, points[:, 0]), np.interp(s, t, points[:, 1])], axis=1)
    noise = rng.normal(0, 1, size=(max(3, n // 6), 2))
    wobble = np.stack([np.interp(np.linspace(0, len(noise) - 1, n), np.arange(len(noise)), noise[:, k])
                       for k in range(2)], axis=1)
    return dense + wobble * amount


def hand_scribble(sample: Sample, rng: np.random.Generator) -> Image.Image:
    """A jittered, thick white-on-black outline (shapes) or stick drawing (figures)."""
    canvas = np.zeros((SIZE, SIZE), dtype=np.uint8)
    width = int(rng.integers(2, 4))
    strokes: list[np.ndarray] = []
    if sample.outline:
        pts = np.asarray(sample.outline + sample.outline[:1])
        strokes.append(_jitter_polyline(rng, pts, rng.uniform(0.4, 1.2)))
    else:
        kp = sample.keypoints
        for a, b in LIMBS:
            if max(a, b) < 14 and (a, b) != (1, 0):
                strokes.append(_jitter_polyline(rng, np.asarray([kp[a], kp[b]]), 0.5))
        head_r = abs(kp[1][1] - kp[0][1])
        t = np.linspace(0, 2 * math.pi, 20)
        strokes.append(_jitter_polyline(rng, np.stack([kp[0][0] + head_r * np.cos(t), kp[0][1] + head_r * np.sin(t)], 1), 0.4))
    for stroke in strokes:
        cv2.polylines(canvas, [np.round(stroke * 16).astype(np.int32)], False, 255, width, cv2.LINE_AA, shift=4)
    canvas = np.where(canvas > 96, 255, 0).astype(np.uint8)
    return Image.fromarray(np.stack([canvas] * 3, axis=-1))


def control_image(sample: Sample, kind: str, seed: int, index: int) -> Image.Image:
    """The control image of ``kind`` (canny / scribble / pose) for a sample, as the studio makes it."""
    if kind == "canny":
        return canny(sample.image)
    if kind == "scribble":
        rng = np.random.default_rng([seed, index, 7])
        return scribble_from_image(sample.image) if rng.random() < 0.3 else hand_scribble(sample, rng)
    if kind == "pose":
        if not sample.keypoints:
            raise ValueError("pose controls exist only for figure samples")
        return render_pose(list(sample.keypoints), SIZE, SIZE)
    raise ValueError(f"unknown control kind {kind!r}")
