"""X/Y/Z plot axes: how each axis type parses its values, applies one to a request, and labels it.

Values are comma separated (quote a value that holds a comma: "a, b"). Numbers also take ranges as
A1111 writes them: `1-5` (1,2,3,4,5), `1-9 (+2)` (1,3,5,7,9), `5-9 [3]` (3 values from 5 to 9).
"""
from __future__ import annotations

import csv
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from studio.api import ExtensionContext, GenerationRequest

MAX_SEED = 2**32 - 1
MAX_CELLS = 256  # images per plot: every axis and their product are counted against it before any work
_NUMBER = r"[+-]?\d+(?:\.\d+)?"
_RANGE = re.compile(rf"^({_NUMBER})\s*-\s*({_NUMBER})\s*(?:\(\s*({_NUMBER})\s*\)|\[\s*(\d+)\s*\])?$")

Parser = Callable[[list[str], ExtensionContext, GenerationRequest], list[Any]]


@dataclass(frozen=True)
class AxisType:
    label: str
    parse: Parser
    apply: Callable[[GenerationRequest, Any], GenerationRequest]
    caption: Callable[[Any], str]


@dataclass(frozen=True)
class Axis:
    type: AxisType
    values: list[Any]
    text: str  # the values as the user wrote them (recorded in the grid's infotext)

    @property
    def labels(self) -> list[str]:
        return [self.type.caption(value) for value in self.values]

    @property
    def is_nothing(self) -> bool:
        return self.type is NOTHING

    def apply(self, request: GenerationRequest, index: int) -> GenerationRequest:
        return self.type.apply(request, self.values[index])


def split_values(text: str) -> list[str]:
    rows = list(csv.reader([text], skipinitialspace=True)) if text.strip() else [[]]
    return [item.strip() for item in rows[0] if item.strip()]


def count_values(items: Sequence[str]) -> int:
    """How many values the items stand for, ranges counted arithmetically (never expanded): a
    `1-4000000000` costs no more to count than `1-5`. Items that are not ranges count one each."""
    total = 0
    for item in items:
        match = _RANGE.match(item)
        total += _range_size(match) if match else 1
    return total


def _range_size(match: re.Match) -> int:
    start, end = float(match.group(1)), float(match.group(2))
    if match.group(4):
        return int(match.group(4))
    step = float(match.group(3)) if match.group(3) else (1.0 if end >= start else -1.0)
    if step == 0 or (end - start) * step < 0:
        return 1  # refused with its own message when expanded
    return int(math.floor((end - start) / step + 1e-9)) + 1


def check_count(items: Sequence[str], what: str) -> None:
    """Refuse an axis over the cap from its arithmetic size, before its values are built."""
    count = len(items) if len(items) > MAX_CELLS else count_values(items)
    if count > MAX_CELLS:
        raise ValueError(f"X/Y/Z plot: the {what} axis has {count} values; a plot makes at most "
                         f"{MAX_CELLS} images (the cell limit): use fewer values")


def numbers(items: Sequence[str], kind: type, what: str) -> list[Any]:
    check_count(items, what)
    out: list[Any] = []
    for item in items:
        match = _RANGE.match(item)
        out += _expand_range(match, kind, what) if match else [_number(item, kind, what)]
    return out


def _number(text: str, kind: type, what: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > 2**53:  # 1e999 is inf: int(inf) would overflow
        raise ValueError(f"{what}: {text!r} is not a finite number in range")
    if kind is int and value != int(value):
        raise ValueError(f"{what}: {text!r} is not a whole number")
    return kind(value)


def _expand_range(match: re.Match, kind: type, what: str) -> list[Any]:
    start, end = _number(match.group(1), kind, what), _number(match.group(2), kind, what)
    if match.group(4):  # [count]
        count = int(match.group(4))
        if count < 1:
            raise ValueError(f"{what}: a range needs at least one value")
        if count == 1:
            return [start]
        return [kind(round(start + (end - start) * i / (count - 1), 6)) for i in range(count)]
    step = _number(match.group(3), kind, what) if match.group(3) else (1 if end >= start else -1)
    if step == 0 or (end - start) * step < 0:
        raise ValueError(f"{what}: the step {step} never goes from {start} to {end}")
    values, value = [], start
    while (value <= end + 1e-9) if step > 0 else (value >= end - 1e-9):
        values.append(kind(round(value, 6)))
        value += step
    return values


def _seeds(items: list[str], ctx: ExtensionContext, request: GenerationRequest) -> list[int]:
    return [random.randint(0, MAX_SEED) if seed == -1 else seed for seed in numbers(items, int, "Seed")]


def _variation_seeds(items: list[str], ctx: ExtensionContext, request: GenerationRequest) -> list[int]:
    return [random.randint(0, MAX_SEED) if seed == -1 else seed for seed in numbers(items, int, "Var. seed")]


def _variation_strengths(items: list[str], ctx: ExtensionContext, request: GenerationRequest) -> list[float]:
    strengths = numbers(items, float, "Var. strength")
    outside = [value for value in strengths if not 0 <= value <= 1]
    if outside:
        raise ValueError(f"Var. strength: {outside[0]:g} is outside 0..1")
    return strengths


def _samplers(items: list[str], ctx: ExtensionContext, request: GenerationRequest) -> list[str]:
    known = {name.lower(): name for name in ctx.samplers}
    known.update({alias.lower(): name for name, spec in ctx.samplers.items() for alias in spec.aliases})
    unknown = [item for item in items if item.lower() not in known]
    if unknown:
        raise ValueError(f"Sampler: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(ctx.samplers)}")
    return [known[item.lower()] for item in items]


def _models(items: list[str], ctx: ExtensionContext, request: GenerationRequest) -> list[str]:
    titles = ctx.model_titles()
    found = []
    for item in items:
        matches = [t for t in titles if t == item] or [t for t in titles if t.lower().startswith(item.lower())]
        if len(matches) != 1:
            raise ValueError(f"Checkpoint name: {item!r} " + ("is ambiguous" if matches else "is not a known model")
                             + f"; models: {', '.join(titles)}")
        found.append(matches[0])
    return found


def _denoising(items: list[str], ctx: ExtensionContext, request: GenerationRequest) -> list[float]:
    if request.init_image is None:
        raise ValueError("Denoising needs a source image: run the plot from the img2img tab")
    return numbers(items, float, "Denoising")


def _prompt_sr(items: list[str], ctx: ExtensionContext, request: GenerationRequest) -> list[tuple[str, str]]:
    search = items[0]
    if search not in request.prompt and search not in request.negative_prompt:
        raise ValueError(f"Prompt S/R: {search!r} (the first value) is not in the prompt or negative prompt")
    return [(search, item) for item in items]


def _replace_prompt(request: GenerationRequest, pair: tuple[str, str]) -> GenerationRequest:
    search, replacement = pair
    return request.replace(prompt=request.prompt.replace(search, replacement),
                           negative_prompt=request.negative_prompt.replace(search, replacement))


def _labelled(label: str) -> Callable[[Any], str]:
    return lambda value: f"{label}: {value:g}" if isinstance(value, float) else f"{label}: {value}"


NOTHING = AxisType("Nothing", lambda items, ctx, request: [None], lambda request, value: request, lambda value: "")
AXIS_TYPES = {axis.label: axis for axis in (
    NOTHING,
    AxisType("Seed", _seeds, lambda r, v: r.replace(seed=v), _labelled("Seed")),
    AxisType("Var. seed", _variation_seeds, lambda r, v: r.replace(subseed=v), _labelled("Var. seed")),
    AxisType("Var. strength", _variation_strengths, lambda r, v: r.replace(subseed_strength=v),
             _labelled("Var. strength")),
    AxisType("Steps", lambda items, ctx, r: numbers(items, int, "Steps"), lambda r, v: r.replace(steps=v),
             _labelled("Steps")),
    AxisType("CFG Scale", lambda items, ctx, r: numbers(items, float, "CFG Scale"),
             lambda r, v: r.replace(cfg_scale=v), _labelled("CFG Scale")),
    AxisType("Sampler", _samplers, lambda r, v: r.replace(sampler_name=v), str),
    AxisType("Denoising", _denoising, lambda r, v: r.replace(denoising_strength=v), _labelled("Denoising")),
    AxisType("Prompt S/R", _prompt_sr, _replace_prompt, lambda pair: pair[1]),
    AxisType("Checkpoint name", _models, lambda r, v: r.replace(model=v), str),
)}


def parse_axis(type_label: str | None, text: str | None, ctx: ExtensionContext, request: GenerationRequest,
               name: str) -> Axis:
    """One axis from the UI's choice and text; a ValueError names the axis and what is wrong."""
    axis_type = AXIS_TYPES.get(type_label or "Nothing")
    if axis_type is None:
        raise ValueError(f"{name} type {type_label!r} is unknown; choose from {', '.join(AXIS_TYPES)}")
    if axis_type is NOTHING:
        return Axis(NOTHING, [None], "")
    items = split_values(text or "")
    if not items:
        raise ValueError(f"{name} values are empty: enter values for {axis_type.label}, separated by commas")
    check_count(items, f"{name} ({axis_type.label})")
    return Axis(axis_type, axis_type.parse(items, ctx, request), (text or "").strip())
