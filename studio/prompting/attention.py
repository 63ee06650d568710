"""A1111's attention syntax: `(word)` x1.1, `[word]` /1.1, `(word:1.3)`, escapes, `BREAK`.

A port of `parse_prompt_attention` from AUTOMATIC1111's modules/prompt_parser.py: the same regular
expression, the same bracket stacks (unbalanced brackets still weigh the rest of the prompt) and the
same merging of neighbouring runs with equal weights. BREAK comes out as the pair ("BREAK", -1).
Its cost is the prompt's length times its bracket depth, which `studio.prompting.limits` bounds
before any parse.
"""
from __future__ import annotations

import re

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK_WEIGHT = -1.0

_ATTENTION = re.compile(r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """[(text, weight), ...]; ("BREAK", -1.0) where a new 75-token chunk must start."""
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for position in range(start, len(res)):
            res[position][1] *= multiplier

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            round_brackets.append(len(res))
        elif token == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), _number(weight))
        elif token == ")" and round_brackets:
            multiply_range(round_brackets.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_brackets:
            multiply_range(square_brackets.pop(), SQUARE_MULTIPLIER)
        else:
            for index, part in enumerate(_BREAK.split(token)):
                if index > 0:
                    res.append(["BREAK", BREAK_WEIGHT])
                res.append([part, 1.0])
    for position in round_brackets:
        multiply_range(position, ROUND_MULTIPLIER)
    for position in square_brackets:
        multiply_range(position, SQUARE_MULTIPLIER)
    if not res:
        return [("", 1.0)]
    return _merge_equal_weights(res)


def _merge_equal_weights(res: list[list]) -> list[tuple[str, float]]:
    """Neighbouring runs of equal weight become one (joined once: linear in the prompt's length)."""
    merged: list[tuple[str, float]] = []
    start = 0
    for index in range(1, len(res) + 1):
        if index == len(res) or res[index][1] != res[start][1]:
            merged.append(("".join(item[0] for item in res[start:index]), float(res[start][1])))
            start = index
    return merged


def _number(text: str) -> float:
    """A1111 calls float() on the match; a malformed number like `1.2.3` is weight 1 here, not a crash."""
    try:
        return float(text)
    except ValueError:
        return 1.0
