"""Prompt styles: A1111's styles.csv (columns name, prompt, negative_prompt).

A style's prompt replaces `{prompt}` with the user's prompt, or is appended after ", " when it has
no placeholder (A1111's `merge_prompts`); the same for the negative prompt. Styles are read from
`settings.styles_file` (the user's own, written by "save"), or from the example shipped in
presets/styles.csv while the user has none.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from studio.errors import StudioError
from studio.request import GenerationRequest, RequestError
from studio.settings import PROJECT_DIR, Settings

EXAMPLE_STYLES = PROJECT_DIR / "presets" / "styles.csv"
COLUMNS = ("name", "prompt", "negative_prompt")
PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def styles_source(settings: Settings) -> Path:
    """The file styles are read from: the user's file when it exists, else the shipped example."""
    return settings.styles_file if settings.styles_file.is_file() else EXAMPLE_STYLES


def load_styles(settings: Settings) -> dict[str, Style]:
    """Style name -> Style, in file order. A file that cannot be read raises StudioError with its name."""
    path = styles_source(settings)
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise StudioError(f"cannot read styles file {path}: {error}") from error
    return parse_styles(text)


def parse_styles(text: str) -> dict[str, Style]:
    styles: dict[str, Style] = {}
    for row in csv.DictReader(io.StringIO(text), skipinitialspace=True):
        name = (row.get("name") or "").strip()
        if name:
            styles[name] = Style(name, row.get("prompt") or "", row.get("negative_prompt") or "")
    return styles


def save_style(settings: Settings, style: Style) -> dict[str, Style]:
    """Add (or replace) a style in the user's styles file, creating it from the current styles;
    written atomically. Returns the styles now in the file."""
    name = style.name.strip()
    if not name:
        raise RequestError("give the style a name")
    styles = {**load_styles(settings), name: Style(name, style.prompt, style.negative_prompt)}
    _write_atomically(settings.styles_file, format_styles(styles.values()))
    return styles


def format_styles(styles: Iterable[Style]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for style in styles:
        writer.writerow((style.name, style.prompt, style.negative_prompt))
    return buffer.getvalue()


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """A1111's merge: fill `{prompt}`, else join the two with ", " (skipping empty ones)."""
    if PLACEHOLDER in style_prompt:
        return style_prompt.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


def apply_styles(prompt: str, negative_prompt: str, names: Iterable[str],
                 styles: dict[str, Style]) -> tuple[str, str]:
    """Both prompts with the named styles applied in order; an unknown name raises RequestError."""
    for name in names:
        if name not in styles:
            known = ", ".join(styles) or "none (add some to styles.csv)"
            raise RequestError(f"unknown style {name!r}; styles: {known}")
        prompt = merge_prompts(styles[name].prompt, prompt)
        negative_prompt = merge_prompts(styles[name].negative_prompt, negative_prompt)
    return prompt, negative_prompt


def apply_request_styles(request: GenerationRequest, styles: dict[str, Style]) -> GenerationRequest:
    """The request with its styles expanded into its prompts (the names stay as a record)."""
    if not request.styles:
        return request
    prompt, negative = apply_styles(request.prompt, request.negative_prompt, request.styles, styles)
    return request.replace(prompt=prompt, negative_prompt=negative)


def remove_style_text(style_prompt: str, prompt: str) -> str | None:
    """The prompt before `style_prompt` was merged into it, or None when it was not (A1111's
    `extract_style_text_from_prompt`)."""
    text, style = prompt.strip(), style_prompt.strip()
    if PLACEHOLDER in style:
        left, _, right = style.partition(PLACEHOLDER)
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            return text[len(left):len(text) - len(right)]
        return None
    if not text.endswith(style):
        return None
    rest = text[:len(text) - len(style)]
    return rest[:-2] if rest.endswith(", ") else rest


def unapply_styles(prompt: str, negative_prompt: str, names: Iterable[str],
                   styles: dict[str, Style]) -> tuple[str, str] | None:
    """The prompts before the named styles were applied, or None when that cannot be told exactly
    (a style unknown here, or text that re-applying would not give back). Used when an infotext
    with `Styles` is sent to a tab: the styles are selected again and the prompts shown bare."""
    names = list(names)
    if not names or any(name not in styles for name in names):
        return None
    bare, bare_negative = prompt, negative_prompt
    for name in reversed(names):
        bare = remove_style_text(styles[name].prompt, bare)
        bare_negative = remove_style_text(styles[name].negative_prompt, bare_negative)
        if bare is None or bare_negative is None:
            return None
    if apply_styles(bare, bare_negative, names, styles) != (prompt, negative_prompt):
        return None
    return bare, bare_negative


def infotext_style_names(params: dict[str, str]) -> list[str]:
    """The names in an infotext's `Styles` value (a JSON list), [] when absent or malformed."""
    try:
        names = json.loads(params.get("Styles", "[]"))
    except ValueError:
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".styles-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


