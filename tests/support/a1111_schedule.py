"""The reference for studio.prompting.schedule: A1111's prompt-editing grammar, parsed with lark.

Our earlier port of A1111's `get_learned_conditioning_prompt_schedules`, kept only to check the
linear scanner against on short random prompts (its Earley parse is far from linear on long ones).

A port of `get_learned_conditioning_prompt_schedules` from AUTOMATIC1111's modules/prompt_parser.py
(the non-hires-fix, "new scheduling" path of A1111 >= 1.6) with its lark grammar unchanged, so
ambiguous prompts resolve the way A1111 resolves them:

- a number with a dot is a fraction of the steps (`0.5` of 20 -> step 10), without a dot a step;
- the result is [(end_step, text), ...]: at sampling step s (0-based) the first entry with
  s <= end_step is used (A1111's `reconstruct_cond_batch`);
- alternation `[a|b]` changes the text every step; a prompt the grammar rejects is used as is.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterator

import lark

_GRAMMAR = r"""
!start: (prompt | /[][():]/+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
!emphasized: "(" prompt ")"
        | "(" prompt ":" prompt ")"
        | "[" prompt "]"
scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
alternate: "[" prompt ("|" [prompt])+ "]"
WHITESPACE: /\s+/
plain: /([^\\\[\]():|]|\\.)+/
%import common.SIGNED_NUMBER -> NUMBER
"""

Schedule = list[tuple[int, str]]


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    return lark.Lark(_GRAMMAR)  # built on first use, not at import


def prompt_schedule(prompt: str, steps: int) -> Schedule:
    """[(end_step, text), ...] for one prompt over `steps` sampling steps."""
    try:
        tree = _parser().parse(prompt)
    except lark.exceptions.LarkError:
        return [(steps, prompt)]
    return [(step, _text_at(step, tree)) for step in _change_steps(steps, tree)]


def _change_steps(steps: int, tree: lark.Tree) -> list[int]:
    """Every step where the text may change (and the last step); resolves the schedules' numbers
    to step counts in the tree, as A1111's CollectSteps visitor does."""
    found = {steps}
    for node in tree.iter_subtrees():
        if node.data == "scheduled":
            raw = node.children[-2]
            value = float(raw)
            when = min(steps, int(value * steps if "." in str(raw) else value))
            node.children[-2] = when
            if when >= 1:
                found.add(when)
        elif node.data == "alternate":
            found.update(range(1, steps + 1))
    return sorted(found)


def _text_at(step: int, tree: lark.Tree) -> str:
    return "".join(_flatten(_AtStep(step).transform(tree)))


class _AtStep(lark.Transformer):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def scheduled(self, args: list) -> Iterator:
        before, after, _, when, _ = args
        yield (before or ()) if self.step <= when else after

    def alternate(self, args: list) -> Iterator:
        options = ["" if not arg else arg for arg in args]
        yield options[(self.step - 1) % len(options)]

    def start(self, args: list) -> str:
        return "".join(_flatten(args))

    def plain(self, args: list) -> Iterator:
        yield args[0].value

    def __default__(self, data: str, children: list, meta: object) -> Iterator:
        for child in children:
            yield child


def _flatten(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif value is not None:
        for item in value:  # type: ignore[attr-defined]
            yield from _flatten(item)
