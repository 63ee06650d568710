"""A1111's positional `script_args` of the X/Y/Z plot script (HTTP API) -> this script's values.

Accepted layouts (A1111 1.x, scripts/xyz_grid.py):

    [x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown,
     z_type, z_values, z_values_dropdown, draw_legend, ...]          (A1111 1.1 and later)
    [x_type, x_values, y_type, y_values, z_type, z_values, draw_legend, ...]   (older)

An axis type is its label ("Seed", "Var. seed", "Var. strength", "Steps", "CFG Scale", "Prompt S/R",
"Sampler", "Checkpoint name", "Denoising", "Nothing"; any case) or A1111's index in its txt2img /
img2img list (A1111 1.10) for these: txt2img 0 Nothing, 1 Seed, 2 Var. seed, 3 Var. strength,
4 Steps, 6 CFG Scale, 7 Prompt S/R, 9 Sampler, 11 Checkpoint name; img2img 0 Nothing, 1 Seed,
2 Var. seed, 3 Var. strength, 4 Steps, 5 CFG Scale, 7 Prompt S/R, 9 Sampler, 10 Checkpoint name. Other indices are refused (name the type instead). Values are text
("1, 2, 3", "1-5 (+2)"), a list, or — when the text is empty — the dropdown list. Later arguments
(include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_*, margin_size, csv_mode)
are accepted and ignored: cells are always returned, seeds are fixed as A1111 does by default.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from studio.api import GenerationRequest

from .axes import AXIS_TYPES

TXT2IMG_INDEX = {0: "Nothing", 1: "Seed", 2: "Var. seed", 3: "Var. strength", 4: "Steps", 6: "CFG Scale", 7: "Prompt S/R", 9: "Sampler",
                 11: "Checkpoint name"}
IMG2IMG_INDEX = {0: "Nothing", 1: "Seed", 2: "Var. seed", 3: "Var. strength", 4: "Steps", 5: "CFG Scale", 7: "Prompt S/R", 9: "Sampler",
                 10: "Checkpoint name"}


def values_from_script_args(args: Sequence[Any], request: GenerationRequest) -> Mapping[str, Any]:
    args = list(args)
    if not args:
        raise ValueError("X/Y/Z plot needs at least [x_type, x_values]")
    with_dropdowns = len(args) >= 9 and all(a is None or isinstance(a, (list, tuple)) for a in args[2:9:3])
    width = 3 if with_dropdowns else 2
    values: dict[str, Any] = {}
    for n, name in enumerate(("x", "y", "z")):
        part = args[n * width:(n + 1) * width]
        kind = part[0] if part else "Nothing"
        text = part[1] if len(part) > 1 else ""
        dropdown = part[2] if with_dropdowns and len(part) > 2 else None
        values[f"{name}_type"] = axis_label(kind, request, name.upper())
        values[f"{name}_values"] = values_text(text, dropdown)
    legend_at = 3 * width
    values["draw_legend"] = bool(args[legend_at]) if len(args) > legend_at else True
    return values


def axis_label(kind: Any, request: GenerationRequest, name: str) -> str:
    if isinstance(kind, bool):
        raise ValueError(f"{name} type must be a type name or an A1111 index (got {kind!r})")
    if isinstance(kind, int) or (isinstance(kind, str) and kind.strip().isdigit()):
        table = TXT2IMG_INDEX if request.init_image is None else IMG2IMG_INDEX
        index = int(kind)
        if index not in table:
            raise ValueError(f"{name} type index {index} is not supported; name the type instead "
                             f"({', '.join(AXIS_TYPES)})")
        return table[index]
    labels = {label.lower(): label for label in AXIS_TYPES}
    if not isinstance(kind, str) or kind.strip().lower() not in labels:
        raise ValueError(f"{name} type {kind!r} is unknown; choose from {', '.join(AXIS_TYPES)}")
    return labels[kind.strip().lower()]


def values_text(text: Any, dropdown: Any) -> str:
    if isinstance(text, (list, tuple)):
        return ", ".join(_quoted(str(item)) for item in text)
    text = "" if text is None else str(text)
    if not text.strip() and isinstance(dropdown, (list, tuple)) and dropdown:
        return ", ".join(_quoted(str(item)) for item in dropdown)
    return text


def _quoted(item: str) -> str:
    return '"' + item.replace('"', '""') + '"' if "," in item or '"' in item else item
