"""Dynamic prompt syntax: {a|b|c} picks one variant (nesting allowed), __name__ picks a line of
wildcards/name.txt. Choices come from a random.Random the caller seeds, so a seed gives one prompt."""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Mapping

VARIANTS = re.compile(r"\{([^{}]*)\}")  # innermost first
WILDCARD = re.compile(r"__([\w\-/]+?)__")
MAX_PASSES = 50  # wildcards may contain wildcards; stop a file that includes itself


def has_syntax(text: str) -> bool:
    return bool(VARIANTS.search(text) or WILDCARD.search(text))


def load_wildcards(folder: Path) -> dict[str, list[str]]:
    """name -> its non-empty, non-comment lines, for every wildcards/**/*.txt (name: relative path)."""
    if not folder.is_dir():
        return {}
    cards = {}
    for path in sorted(folder.rglob("*.txt")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        cards[path.relative_to(folder).with_suffix("").as_posix()] = [line for line in lines if line and not line.startswith("#")]
    return cards


def expand(text: str, rng: random.Random, wildcards: Mapping[str, list[str]]) -> str:
    """Expand wildcards and variants until none is left. Unknown wildcards stay as written."""
    for _ in range(MAX_PASSES):
        changed = WILDCARD.sub(lambda m: _pick_line(m, rng, wildcards), text)
        changed = VARIANTS.sub(lambda m: rng.choice(m.group(1).split("|")), changed, count=1)
        if changed == text:
            return text
        text = changed
    return text


def _pick_line(match: re.Match, rng: random.Random, wildcards: Mapping[str, list[str]]) -> str:
    lines = wildcards.get(match.group(1))
    return rng.choice(lines) if lines else match.group(0)


MAX_COMBINATIONS = 1000


def combinations(text: str, wildcards: Mapping[str, list[str]], limit: int = MAX_COMBINATIONS) -> list[str]:
    """Every expansion of `text`, in order (first variant first, the last group varying fastest),
    without repeats, at most `limit`. Unknown wildcards stay as written."""
    found: list[str] = []
    for option in _combine(text, wildcards, 0):
        if option not in found:
            found.append(option)
            if len(found) >= limit:
                break
    return found


def _combine(text: str, wildcards: Mapping[str, list[str]], depth: int):
    """Expand the first (innermost-first for variants) group, then the rest, depth first."""
    if depth > MAX_PASSES:
        yield text
        return
    card = next((m for m in WILDCARD.finditer(text) if wildcards.get(m.group(1))), None)
    group = VARIANTS.search(text)
    match = card if card is not None and (group is None or card.start() < group.start()) else group
    if match is None:
        yield text
        return
    choices = wildcards[match.group(1)] if match is card else match.group(1).split("|")
    for choice in choices:
        yield from _combine(text[:match.start()] + choice + text[match.end():], wildcards, depth + 1)
