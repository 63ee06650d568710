"""Dynamic prompt syntax: {a|b|c} picks one variant (nesting allowed), __name__ picks a line of
wildcards/name.txt. Choices come from a random.Random the caller seeds, so a seed gives one prompt.

sd-dynamic-prompts' several-at-once form: `{2$$a|b|c}` picks two different variants joined by ", ";
`{1-3$$...}` between one and three, `{-2$$...}` at most two, `{2-$$...}` two or more; a middle part
`{2$$ and $$a|b|c}` is the separator."""
from __future__ import annotations

import itertools
import random
import re
from pathlib import Path
from typing import Mapping

VARIANTS = re.compile(r"\{([^{}]*)\}")  # innermost first
COUNTED = re.compile(r"^\s*(\d*)\s*(?:(-)\s*(\d*))?\s*\$\$(?:(.*?)\$\$)?(.*)$", re.S)  # {N$$...}, {N-M$$sep$$...}
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
        changed = VARIANTS.sub(lambda m: _pick_variants(m.group(1), rng), changed, count=1)
        if changed == text:
            return text
        text = changed
    return text


def variants(group: str) -> tuple[list[str], int, int, str]:
    """A group's options, how many to pick (least, most) and the separator."""
    counted = COUNTED.match(group)
    if counted is None:
        return group.split("|"), 1, 1, ", "
    low, dash, high, separator, body = counted.groups()
    options = body.split("|")
    least = int(low) if low else (0 if dash else 1)
    most = int(high) if high else (len(options) if dash else least)
    least, most = min(least, len(options)), min(max(most, least), len(options))
    return options, least, most, ", " if separator is None else separator


def _pick_variants(group: str, rng: random.Random) -> str:
    options, least, most, separator = variants(group)
    if (least, most) == (1, 1):
        return rng.choice(options)
    return separator.join(rng.sample(options, rng.randint(least, most)))


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
    choices = wildcards[match.group(1)] if match is card else _every_pick(match.group(1))
    for choice in choices:
        yield from _combine(text[:match.start()] + choice + text[match.end():], wildcards, depth + 1)


def _every_pick(group: str) -> list[str]:
    """Every way a group can come out, fewest variants first, in the options' order."""
    options, least, most, separator = variants(group)
    return [separator.join(chosen) for count in range(least, most + 1)
            for chosen in itertools.combinations(options, count)]
