"""A1111's prompt editing and alternation: `[a:b:0.4]`, `[a:b:12]`, `[a::0.5]`, `[:b:0.5]`, `[a|b]`.

What AUTOMATIC1111's `get_learned_conditioning_prompt_schedules` computes with its lark grammar
(the "new scheduling" path of A1111 >= 1.6), but read by a single-pass scanner: linear in time and
memory in the prompt's length, whatever the prompt (the grammar's Earley parse is not: `"(:" * 400`
took 24 s there). The grammar's meaning is kept, and a test compares the two on random prompts:

- a number with a dot is a fraction of the steps (`0.5` of 20 -> step 10), without a dot a step;
- the result is [(end_step, text), ...]: at sampling step s (0-based) the first entry with
  s <= end_step is used (A1111's `reconstruct_cond_batch`);
- alternation `[a|b]` changes the text every step;
- a bracket that does not close into a valid group stays literal text (the grammar's top-level
  fallback), and a prompt the grammar rejects as a whole (a `|` outside any `[...]`, a trailing
  backslash) is used as is, unscheduled.

Limits (`studio.prompting.limits`) are checked on the text before the scan, and on the number of
groups and distinct texts after it, before any text is expanded step by step.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Union

from studio.request import RequestError

Schedule = list[tuple[int, str]]
Sequence_ = list["Node"]


@dataclass(frozen=True)
class Edit:
    """`[before:after:when]`; `when` still as written (its meaning depends on the steps)."""

    before: Sequence_
    after: Sequence_
    when: str


@dataclass(frozen=True)
class Alternation:
    options: tuple[Sequence_, ...]


Node = Union[str, Edit, Alternation]

# lark's common.SIGNED_NUMBER, with optional whitespace either side (the grammar's [WHITESPACE]).
_NUMBER = re.compile(r"\s*([+-]?(?:[0-9]+[eE][+-]?[0-9]+|(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+))\s*")
_PLAIN = re.compile(r"[^\\\[\]():|]+")
_SCAN_DEPTH = 200


class _Unparseable(Exception):
    """The grammar rejects the whole prompt: A1111 then uses it as is."""


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt as a sequence of literal text and edit/alternation groups."""

    nodes: Sequence_
    edits: int = 0
    alternations: int = 0

    @property
    def dynamic(self) -> bool:
        return bool(self.edits or self.alternations)


def parse_schedule_syntax(prompt: str) -> ParsedPrompt:
    """The prompt's edit and alternation groups (one pass; a rejected prompt is one literal)."""
    try:
        nodes, edits, alternations = _Scanner(prompt).top()
    except _Unparseable:
        return ParsedPrompt([prompt])
    return ParsedPrompt(nodes, edits, alternations)


def prompt_schedule(prompt: str, steps: int, parsed: ParsedPrompt | None = None) -> Schedule:
    """[(end_step, text), ...] for one prompt over `steps` sampling steps."""
    parsed = parsed or parse_schedule_syntax(prompt)
    if not parsed.dynamic:
        return [(steps, prompt)]
    return [(step, render(parsed.nodes, step, steps)) for step in change_steps(parsed, steps)]


def change_steps(parsed: ParsedPrompt, steps: int) -> list[int]:
    """Every step where the text may change, and the last step (A1111's CollectSteps)."""
    if parsed.alternations:
        return list(range(1, steps + 1))
    found = {steps}
    stack: list[Sequence_] = [parsed.nodes]
    while stack:
        for node in stack.pop():
            if isinstance(node, Edit):
                when = edit_step(node.when, steps)
                if when >= 1:
                    found.add(when)
                stack += [node.before, node.after]
    return sorted(found)


def edit_step(raw: str, steps: int) -> int:
    """A1111: `0.5` is a fraction of the steps, `5` a step; past the end means the last step."""
    value = float(raw)
    scaled = value * steps if "." in raw else value
    if not math.isfinite(scaled):
        raise RequestError(f"prompt editing: [a:b:{raw[:20]}] needs a finite step or fraction of the steps")
    return min(steps, int(scaled))


def render(nodes: Sequence_, step: int, steps: int) -> str:
    """The text at a step: each edit picks a side, each alternation the step's option."""
    parts: list[str] = []
    _render_into(parts, nodes, step, steps)
    return "".join(parts)


def _render_into(parts: list[str], nodes: Sequence_, step: int, steps: int) -> None:
    for node in nodes:  # recursion is bounded by the nesting limit checked before parsing
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, Edit):
            _render_into(parts, node.before if step <= edit_step(node.when, steps) else node.after, step, steps)
        else:
            _render_into(parts, node.options[(step - 1) % len(node.options)], step, steps)


class _Scanner:
    """Recursive descent over the grammar with each group's parse memoised by its position, so
    every character is read a bounded number of times (a group that fails is literal text at
    the top level and makes any group around it fail, as in the grammar)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.groups: dict[int, tuple[int, Sequence_, int, int] | None] = {}
        self.depth = 0

    def top(self) -> tuple[Sequence_, int, int]:
        text, out = self.text, _Builder()
        position = 0
        while position < len(text):
            char = text[position]
            if char in "([":
                group = self.group(position)
                if group is None:
                    out.literal(char)
                    position += 1
                else:
                    position = out.group(group)
            elif char in ")]:":
                out.literal(char)
                position += 1
            elif char == "|":
                raise _Unparseable  # outside any alternation the grammar has no place for it
            else:
                position = self.plain(position, out)
        return out.nodes, out.edits, out.alternations

    def plain(self, position: int, out: "_Builder") -> int:
        text = self.text
        if text[position] == "\\":
            if position + 1 >= len(text) or text[position + 1] == "\n":
                raise _Unparseable  # `\.` needs a character after it (not a newline)
            out.literal(text[position:position + 2])
            return position + 2
        match = _PLAIN.match(text, position)
        assert match is not None
        out.literal(match.group(0))
        return match.end()

    def group(self, start: int) -> tuple[int, Sequence_, int, int] | None:
        """(end, nodes, edits, alternations) of the group opening at `start`, or None."""
        if start not in self.groups:
            self.depth += 1
            if self.depth > _SCAN_DEPTH:  # never reached through the limits, which check depth first
                raise _Unparseable
            self.groups[start] = self._group(start)
            self.depth -= 1
        return self.groups[start]

    def _group(self, start: int) -> tuple[int, Sequence_, int, int] | None:
        text = self.text
        opening = text[start]
        closing = ")" if opening == "(" else "]"
        segments: list[_Builder] = [_Builder()]
        separators = ""
        last_separator = start
        position = start + 1
        while position < len(text):
            char = text[position]
            if char in "([":
                inner = self.group(position)
                if inner is None:
                    return None
                position = segments[-1].group(inner)
            elif char == closing:
                return _close(opening, segments, separators, text[last_separator + 1:position], position + 1)
            elif char in ")]":
                return None
            elif char in ":|":
                if opening == "(" and (char == "|" or separators):
                    return None  # `(a:w)` has one colon and no bar
                separators += char
                last_separator = position
                segments.append(_Builder())
                position += 1
            else:
                position = self.plain(position, segments[-1])
        return None


def _close(opening: str, segments: list["_Builder"], separators: str, last_segment: str,
           end: int) -> tuple[int, Sequence_, int, int] | None:
    edits = sum(segment.edits for segment in segments)
    alternations = sum(segment.alternations for segment in segments)
    if opening == "(" or not separators:  # emphasis: literal brackets around its content
        closing = ")" if opening == "(" else "]"
        nodes: Sequence_ = [opening]
        for index, segment in enumerate(segments):
            if index:
                nodes.append(":")
            nodes += segment.nodes
        return end, [*nodes, closing], edits, alternations
    if set(separators) == {"|"}:
        return end, [Alternation(tuple(segment.nodes for segment in segments))], edits, alternations + 1
    if set(separators) != {":"} or len(segments) > 3:
        return None
    number = _NUMBER.fullmatch(last_segment)
    if number is None:
        return None
    before = segments[0].nodes if len(segments) == 3 else []
    return end, [Edit(before, segments[-2].nodes, number.group(1))], edits + 1, alternations


class _Builder:
    """A node sequence with neighbouring literal text joined (once, so joining stays linear)."""

    def __init__(self) -> None:
        self._done: Sequence_ = []
        self._text: list[str] = []
        self.edits = 0
        self.alternations = 0

    @property
    def nodes(self) -> Sequence_:
        if self._text:
            self._done.append("".join(self._text))
            self._text = []
        return self._done

    def literal(self, text: str) -> None:
        self._text.append(text)

    def group(self, parsed: tuple[int, Sequence_, int, int]) -> int:
        end, nodes, edits, alternations = parsed
        for node in nodes:
            if isinstance(node, str):
                self._text.append(node)
            else:
                self.nodes.append(node)
        self.edits += edits
        self.alternations += alternations
        return end
