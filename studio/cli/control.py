"""`--controlnet "type=canny,image=PATH,..."` and `--pose-json PATH` -> ControlUnits."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from studio.control.pose import pose_from_openpose_json, render_pose
from studio.control.preprocessors import DEFAULT_MODULE
from studio.request import CONTROL_MODES, CONTROL_RESIZE_MODES, ControlUnit, RequestError

MODE_NAMES = {"balanced": 0, "prompt": 1, "controlnet": 2}
TRUE = ("on", "true", "1", "yes")


def parse_unit(spec: str) -> ControlUnit:
    pairs = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise RequestError(f"--controlnet: expected key=value, got {part!r}")
        pairs[key.strip().lower()] = value.strip()
    control_type = pairs.pop("type", "canny")
    preprocess = pairs.pop("preprocess", "on").lower() in TRUE
    values = {
        "control_type": control_type,
        "module": pairs.pop("module", DEFAULT_MODULE.get(control_type, "none") if preprocess else "none"),
        "image": _open(pairs.pop("image")) if "image" in pairs else None,
        "model": pairs.pop("model", None),
    }
    numbers = {"weight": "weight", "start": "guidance_start", "end": "guidance_end", "low": "threshold_a",
               "high": "threshold_b"}
    try:
        for key, name in numbers.items():
            if key in pairs:
                values[name] = float(pairs.pop(key))
    except ValueError as error:
        raise RequestError(f"--controlnet: {error}") from error
    if "mode" in pairs:
        values["control_mode"] = _choice(pairs.pop("mode"), MODE_NAMES, CONTROL_MODES, "mode")
    if "resize" in pairs:
        values["resize_mode"] = _choice(pairs.pop("resize"), {}, CONTROL_RESIZE_MODES, "resize")
    if "pixel_perfect" in pairs:
        values["pixel_perfect"] = pairs.pop("pixel_perfect").lower() in TRUE
    if pairs:
        raise RequestError(f"--controlnet: unknown keys {', '.join(sorted(pairs))}")
    return ControlUnit(**values)


def _choice(value: str, short: dict[str, int], names: tuple[str, ...], key: str) -> int:
    lowered = value.lower()
    if lowered in short:
        return short[lowered]
    for index, name in enumerate(names):
        if lowered == name.lower() or lowered == str(index):
            return index
    raise RequestError(f"--controlnet {key}: choose one of {', '.join(names)}")


def _open(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.copy()
    except OSError as error:
        raise RequestError(f"--controlnet: cannot open image {path}: {error}") from error


def pose_image(path: Path) -> Image.Image:
    try:
        keypoints, width, height = pose_from_openpose_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as error:
        raise RequestError(f"--pose-json: cannot read {path}: {error}") from error
    return render_pose(keypoints, width, height)


def units_from_args(specs: list[str], pose_json: Path | None) -> tuple[ControlUnit, ...]:
    units = [parse_unit(spec) for spec in specs]
    if pose_json is not None:
        image = pose_image(pose_json)
        for index, unit in enumerate(units):
            if unit.control_type == "pose" and unit.image is None:
                units[index] = ControlUnit(**{**unit.__dict__, "image": image})
                break
        else:
            units.append(ControlUnit(control_type="pose", image=image, module="none"))
    return tuple(units)
