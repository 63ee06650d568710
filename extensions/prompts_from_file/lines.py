"""A1111's "Prompts from file or textbox" line syntax.

A line without `--` is a prompt. Otherwise it is parsed like a command line (shell quoting):
`--prompt "a cat" --negative_prompt blurry --steps 10 --seed 3`; `--prompt` and
`--negative_prompt` take every word up to the next `--option`. The keys are A1111's
(scripts/prompts_from_file.py `prompt_tags`); the ones that would change how the studio saves
(output folders, not saving) or that it cannot do (tiling)
are refused with the reason, never ignored.
"""
from __future__ import annotations

import shlex
from typing import Any, Callable, Mapping, Sequence

LineValues = dict[str, Any]


def _int(text: str) -> int:
    return int(text)


def _float(text: str) -> float:
    return float(text)


def _bool(text: str) -> bool:
    return text == "true"  # as A1111 reads it


# key -> parser; the value becomes the GenerationRequest field of the same name
FIELDS: Mapping[str, Callable[[str], Any]] = {
    "prompt": str, "negative_prompt": str, "styles": str, "seed": _int, "sampler_name": str, "sampler_index": _int,
    "batch_size": _int, "n_iter": _int, "steps": _int, "cfg_scale": _float, "width": _int, "height": _int,
    "subseed": _int, "subseed_strength": _float, "seed_resize_from_h": _int, "seed_resize_from_w": _int,
    "restore_faces": _bool,  # with the face_restoration_model option's restorer; refused when its files are absent
}
# A1111 keys accepted only with a value that changes nothing here (key -> (parser, is harmless, why not))
NEUTRAL: Mapping[str, tuple[Callable[[str], Any], Callable[[Any], bool], str]] = {
    "tiling": (_bool, lambda v: not v, "tiling is not supported here"),
    "do_not_save_samples": (_bool, lambda v: not v, "images are always saved with their parameters"),
    "do_not_save_grid": (_bool, lambda v: True, ""),  # this script makes no grid
    "prompt_for_display": (str, lambda v: True, ""),
}
REFUSED = {"outpath_samples": "output folders cannot be set from a prompt line",
           "outpath_grids": "output folders cannot be set from a prompt line"}
WORDS = ("prompt", "negative_prompt")
MAX_LINES = 1000


def prompt_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the non-empty lines."""
    lines = [(n, line.strip()) for n, line in enumerate(str(text or "").splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError("Prompts from file or textbox: the list of prompts is empty")
    if len(lines) > MAX_LINES:
        raise ValueError(f"Prompts from file or textbox: {len(lines)} lines is more than {MAX_LINES}")
    return lines


def parse_line(number: int, line: str, samplers: Sequence[str]) -> LineValues:
    """The request fields one line sets; ValueError naming the line and the problem."""
    if "--" not in line:
        return {"prompt": line}
    try:
        return _fields(_options(line), samplers)
    except ValueError as error:
        shown = line if len(line) <= 120 else line[:120] + "…"
        raise ValueError(f"Prompts from file or textbox: line {number} ({shown}): {error}") from None


def _options(line: str) -> dict[str, str]:
    try:
        words = shlex.split(line)
    except ValueError as error:  # an unclosed quote
        raise ValueError(f"cannot split it into options ({error})") from None
    options: dict[str, str] = {}
    position = 0
    while position < len(words):
        word = words[position]
        if not word.startswith("--") or len(word) == 2:
            raise ValueError(f"{word!r} is not an --option (write --prompt \"...\" --steps 10 ...)")
        key = word[2:]
        if key in WORDS:  # every word up to the next --option
            end = position + 1
            while end < len(words) and not words[end].startswith("--"):
                end += 1
            options[key] = " ".join(words[position + 1:end])
            position = end
            continue
        if key not in FIELDS and key not in NEUTRAL:
            if key in REFUSED:
                raise ValueError(f"--{key}: {REFUSED[key]}")
            raise ValueError(f"unknown option --{key}; use: {', '.join('--' + k for k in (*FIELDS, *NEUTRAL))}")
        if position + 1 >= len(words):
            raise ValueError(f"--{key} needs a value")
        options[key] = words[position + 1]
        position += 2
    return options


def _fields(options: Mapping[str, str], samplers: Sequence[str]) -> LineValues:
    values: LineValues = {}
    for key, text in options.items():
        parser = FIELDS[key] if key in FIELDS else NEUTRAL[key][0]
        try:
            value = parser(text)
        except ValueError:
            kind = {_int: "a whole number", _float: "a number"}.get(parser, "a value")
            raise ValueError(f"--{key} must be {kind} (got {text!r})") from None
        if key in NEUTRAL:
            harmless, why = NEUTRAL[key][1], NEUTRAL[key][2]
            if not harmless(value):
                raise ValueError(f"--{key} {text}: {why}")
            continue
        values[key] = value
    if "sampler_index" in values:
        index = values.pop("sampler_index")
        if not 0 <= index < len(samplers):
            raise ValueError(f"--sampler_index {index} is not between 0 and {len(samplers) - 1}")
        values.setdefault("sampler_name", samplers[index])
    if "sampler_name" in values:
        names = {name.lower(): name for name in samplers}
        if values["sampler_name"].lower() not in names:
            raise ValueError(f"unknown sampler {values['sampler_name']!r}; choose one of: {', '.join(samplers)}")
        values["sampler_name"] = names[values["sampler_name"].lower()]
    if "styles" in values:
        values["styles"] = tuple(name.strip() for name in values["styles"].split(",") if name.strip())
    return values
