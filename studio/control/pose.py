"""The 18-keypoint OpenPose (COCO) body model: names, limbs, colours, rendering and JSON.

Rendering is controlnet_aux's own ``draw_bodypose`` (the OpenPose look ControlNet expects),
drawn on an upscaled canvas for small images so limbs stay about 2 px wide at 64x64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Optional

import numpy as np
from PIL import Image

from studio.control.aux import import_aux

Point = Optional[tuple[float, float]]

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

# Standard OpenPose limb pairs (0-based indices into KEYPOINT_NAMES), in draw order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# Standard OpenPose colours (RGB), one per limb / keypoint.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# Presets in normalised coordinates (0..1 of the canvas), facing the viewer
# (the person's right side is on the image's left).
_PRESETS_NORM: dict[str, tuple[tuple[float, float], ...]] = {
    "standing": (
        (0.50, 0.16), (0.50, 0.27), (0.40, 0.28), (0.37, 0.43), (0.36, 0.57),
        (0.60, 0.28), (0.63, 0.43), (0.64, 0.57), (0.44, 0.56), (0.43, 0.72),
        (0.43, 0.88), (0.56, 0.56), (0.57, 0.72), (0.57, 0.88),
        (0.48, 0.14), (0.52, 0.14), (0.46, 0.15), (0.54, 0.15),
    ),
    "arms up": (
        (0.50, 0.20), (0.50, 0.31), (0.40, 0.31), (0.34, 0.20), (0.31, 0.08),
        (0.60, 0.31), (0.66, 0.20), (0.69, 0.08), (0.44, 0.59), (0.43, 0.75),
        (0.43, 0.91), (0.56, 0.59), (0.57, 0.75), (0.57, 0.91),
        (0.48, 0.18), (0.52, 0.18), (0.46, 0.19), (0.54, 0.19),
    ),
    "walking": (
        (0.50, 0.16), (0.50, 0.27), (0.40, 0.28), (0.34, 0.41), (0.30, 0.53),
        (0.60, 0.28), (0.66, 0.41), (0.71, 0.51), (0.45, 0.56), (0.36, 0.71),
        (0.30, 0.86), (0.55, 0.56), (0.60, 0.72), (0.66, 0.87),
        (0.48, 0.14), (0.52, 0.14), (0.46, 0.15), (0.54, 0.15),
    ),
}

PRESETS: Mapping[str, tuple[tuple[float, float], ...]] = MappingProxyType(_PRESETS_NORM)


def preset(name: str, width: int, height: int) -> list[Point]:
    """The named preset pose scaled to a ``width`` x ``height`` canvas (pixel coordinates)."""
    if name not in PRESETS:
        raise KeyError(f"unknown pose preset {name!r}; choose from {sorted(PRESETS)}")
    return [(x * width, y * height) for x, y in PRESETS[name]]


def _render_scale(width: int, height: int) -> int:
    """Upscale factor so draw_bodypose's fixed 4 px stick half-width becomes >= 1 px after downscaling."""
    return max(1, round(256 / max(width, height)))


def render_pose(keypoints: Sequence[Point], width: int, height: int) -> Image.Image:
    """Draw an OpenPose body skeleton (18 keypoints in pixel coordinates, None = missing) on black."""
    if len(keypoints) != len(KEYPOINT_NAMES):
        raise ValueError(f"expected {len(KEYPOINT_NAMES)} keypoints, got {len(keypoints)}")
    scale = _render_scale(width, height)
    canvas = np.zeros((height * scale, width * scale, 3), dtype=np.uint8)
    Keypoint = import_aux("controlnet_aux.open_pose.body").Keypoint  # on first use: see studio.control.aux
    points = [None if p is None else Keypoint(p[0] / width, p[1] / height) for p in keypoints]
    canvas = import_aux("controlnet_aux.open_pose.util").draw_bodypose(canvas, points)
    if scale > 1:
        import cv2  # on first use (the CLI and server start without OpenCV)

        canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return Image.fromarray(canvas)


def pose_to_openpose_json(keypoints: Sequence[Point], width: int, height: int) -> dict[str, Any]:
    """The standard OpenPose JSON for one person: missing keypoints are written as (0, 0, 0)."""
    flat: list[float] = []
    for point in keypoints:
        flat.extend([0.0, 0.0, 0.0] if point is None else [float(point[0]), float(point[1]), 1.0])
    return {"canvas_width": width, "canvas_height": height, "people": [{"pose_keypoints_2d": flat}]}


POSE_INFO_KEY = "openpose"  # a detected pose image's info key holding its people_as_openpose_json


def people_as_openpose_json(people: Sequence[Any], width: int, height: int) -> dict[str, Any]:
    """controlnet_aux's PoseResults as sd-webui-controlnet's /controlnet/detect `poses` item: its
    coordinates are fractions of the canvas (as its detector gives them), missing points (0, 0, 0),
    hands and face None (the body model finds neither)."""
    def flat(points: Any) -> list[float] | None:
        if not points:
            return None
        return [value for point in points
                for value in ([float(point.x), float(point.y), 1.0] if point is not None else [0.0, 0.0, 0.0])]

    return {"people": [{"pose_keypoints_2d": flat(person.body.keypoints), "face_keypoints_2d": flat(person.face),
                        "hand_left_keypoints_2d": flat(person.left_hand),
                        "hand_right_keypoints_2d": flat(person.right_hand)} for person in people],
            "canvas_height": height, "canvas_width": width}


def pose_from_openpose_json(data: Mapping[str, Any]) -> tuple[list[Point], int, int]:
    """Read the first person of an OpenPose JSON: (keypoints, canvas_width, canvas_height)."""
    people = data.get("people") or []
    if not people:
        raise ValueError("OpenPose JSON has no people")
    flat = people[0].get("pose_keypoints_2d") or []
    if len(flat) < 3 * len(KEYPOINT_NAMES):
        raise ValueError(f"pose_keypoints_2d needs {3 * len(KEYPOINT_NAMES)} numbers, got {len(flat)}")
    points: list[Point] = []
    for i in range(len(KEYPOINT_NAMES)):
        x, y, c = flat[3 * i: 3 * i + 3]
        points.append(None if c <= 0 else (float(x), float(y)))
    return points, int(data["canvas_width"]), int(data["canvas_height"])


def limb_segments(keypoints: Sequence[Point]) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The drawable limbs (both ends present) as pairs of pixel points."""
    return [(keypoints[a], keypoints[b]) for a, b in LIMBS  # type: ignore[misc]
            if keypoints[a] is not None and keypoints[b] is not None]


def limb_length(segment: tuple[tuple[float, float], tuple[float, float]]) -> float:
    (x0, y0), (x1, y1) = segment
    return math.hypot(x1 - x0, y1 - y0)
