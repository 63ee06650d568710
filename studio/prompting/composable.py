"""A1111's composable diffusion: `a cat :1.2 AND a dog :0.8` — subprompts joined by `AND`, each
with an optional weight at its end. What A1111's `get_multicond_prompt_list` reads, read here in one
pass per part (A1111's regular expression for the weight can backtrack on long runs of spaces)."""
from __future__ import annotations

import re

AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"[-+]?(?:\d+\.?|\d*\.\d+)")


def split_and(prompt: str) -> list[tuple[str, float]]:
    """[(subprompt, weight), ...]; one entry (weight 1) for a prompt without AND."""
    return [subprompt_weight(part) for part in AND.split(prompt)]


def subprompt_weight(part: str) -> tuple[str, float]:
    """`text :1.2` -> ("text", 1.2); trailing white space goes, the weight is the number after the
    last colon when that is all there is (A1111's `re_weight`)."""
    text = part.rstrip()
    colon = text.rfind(":")
    if colon >= 0 and _WEIGHT.fullmatch(text[colon + 1:].lstrip()):
        return text[:colon].rstrip(), float(text[colon + 1:])
    return text, 1.0
