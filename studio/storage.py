"""Saving outputs: PNGs with their A1111 infotext and our exact recipe, written atomically.

Layout follows A1111: outputs/<mode>-images/<YYYY-MM-DD>/<NNNNN>-<seed>.png. A file is written
to a temporary name and then hard-linked to its final name, which fails instead of
overwriting if another writer got there first: an existing output is never replaced.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

from PIL import Image, PngImagePlugin

PARAMETERS_KEY = "parameters"  # A1111's text chunk
STUDIO_KEY = "studio"  # our exact recipe (JSON)
_NUMBERED = re.compile(r"^(\d{5})-")


def output_dir(outputs_root: Path, mode: str, today: _dt.date | None = None) -> Path:
    day = (today or _dt.date.today()).isoformat()
    return outputs_root / f"{mode}-images" / day


def png_info(infotext: str, recipe: Mapping[str, Any] | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, infotext)
    if recipe is not None:
        info.add_itxt(STUDIO_KEY, json.dumps(recipe, sort_keys=True))
    return info


def save_png(
    image: Image.Image,
    directory: Path,
    seed: int,
    infotext: str,
    recipe: Mapping[str, Any] | None = None,
) -> Path:
    """Write image + metadata under the next free number; return the final path."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=".saving-", suffix=".png", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format="PNG", pnginfo=png_info(infotext, recipe))
            stream.flush()
            os.fsync(stream.fileno())
        return _link_to_free_name(tmp, directory, seed)
    finally:
        tmp.unlink(missing_ok=True)


def save_companion(image: Image.Image, png_path: Path, suffix: str) -> Path:
    """Save an input that the run needs to be repeated (mask, control image) beside the output."""
    target = png_path.with_name(f"{png_path.stem}-{suffix}.png")
    image.save(target, format="PNG")
    return target


def _link_to_free_name(tmp: Path, directory: Path, seed: int) -> Path:
    number = next_number(directory)
    while True:
        final = directory / f"{number:05d}-{seed}.png"
        try:
            os.link(tmp, final)
            return final
        except FileExistsError:
            number += 1


def next_number(directory: Path) -> int:
    numbers = [int(m.group(1)) for p in directory.glob("*.png") if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=-1) + 1


def read_png_text(path_or_image: Path | Image.Image) -> dict[str, str]:
    """The text chunks of a PNG (parameters, studio, anything else)."""
    image = Image.open(path_or_image) if isinstance(path_or_image, Path) else path_or_image
    image.load()
    return {k: v for k, v in image.info.items() if isinstance(v, str)}
