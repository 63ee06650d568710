"""What one prompt may cost, checked in order of cost: first what a linear look at the text tells
(length, bracket depth, BREAKs), then the counts the one-pass schedule scan finds, and only then
is the text expanded step by step and encoded.

The bounds are far above what A1111 users write (a long prompt is ~20 chunks of 75 tokens; a few
edits and an alternation or two), and low enough that the worst admissible prompt parses in
milliseconds and encodes a bounded number of chunks.
"""
from __future__ import annotations

import re

from studio.prompting.schedule import ParsedPrompt, Schedule, parse_schedule_syntax, prompt_schedule
from studio.request import MAX_PROMPT_CHARS, RequestError

MAX_NESTING = 32  # ( and [ open at once; the attention parse costs length x depth
MAX_EDITS = 64  # [a:b:N] groups in one prompt
MAX_ALTERNATIONS = 16  # [a|b] groups in one prompt
MAX_SCHEDULE_TEXTS = 32  # different texts one prompt takes over the steps (each is encoded)
MAX_SCHEDULE_CHARS = 3 * MAX_PROMPT_CHARS  # their total length
MAX_CHUNKS = 32  # 75-token chunks in one text (BREAK starts one)
MAX_ENCODED_CHUNKS = 96  # chunks encoded for one prompt: its texts' chunks together
MAX_AND_PARTS = 8  # subprompts of composable diffusion (`a AND b`): the UNet runs once more for each
MAX_NETWORK_TAGS = 32  # <lora:...> tags in one prompt: each is looked up, hashed and applied

_BREAK = re.compile(r"\bBREAK\b")


def check_prompt_text(text: str, field: str = "prompt") -> None:
    """The limits a linear look at the text checks, before any parse."""
    if len(text) > MAX_PROMPT_CHARS:
        raise RequestError(f"{field} must be at most {MAX_PROMPT_CHARS} characters (got {len(text)})")
    depth = deepest = 0
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]" and depth:
            depth -= 1
    if deepest > MAX_NESTING:
        raise RequestError(f"{field}: brackets may nest at most {MAX_NESTING} deep (found {deepest}); "
                           "escape literal brackets as \\( \\)")
    breaks = len(_BREAK.findall(text))
    if breaks >= MAX_CHUNKS:
        raise RequestError(f"{field}: at most {MAX_CHUNKS} chunks of 75 tokens (BREAK starts one); it has {breaks + 1}")


def plan_schedule(text: str, steps: int, field: str = "prompt") -> Schedule:
    """The prompt's schedule of texts over the steps, refused with a RequestError naming the limit
    when it would cost more than the limits allow."""
    check_prompt_text(text, field)
    parsed = parse_schedule_syntax(text)
    check_groups(parsed, field)
    try:
        schedule = prompt_schedule(text, steps, parsed)
    except RequestError as error:
        raise RequestError(f"{field}: {error}") from None
    texts = {entry for _, entry in schedule}
    if len(texts) > MAX_SCHEDULE_TEXTS:
        raise RequestError(f"{field}: its edits and alternations make {len(texts)} different texts over "
                           f"{steps} steps; at most {MAX_SCHEDULE_TEXTS}")
    if sum(map(len, texts)) > MAX_SCHEDULE_CHARS:
        raise RequestError(f"{field}: its edits and alternations make texts of {sum(map(len, texts))} characters "
                           f"together; at most {MAX_SCHEDULE_CHARS}")
    return schedule


def check_groups(parsed: ParsedPrompt, field: str) -> None:
    if parsed.edits > MAX_EDITS:
        raise RequestError(f"{field}: at most {MAX_EDITS} prompt edits [a:b:N] (found {parsed.edits})")
    if parsed.alternations > MAX_ALTERNATIONS:
        raise RequestError(f"{field}: at most {MAX_ALTERNATIONS} alternations [a|b] (found {parsed.alternations})")


def check_parts(count: int) -> None:
    if count > MAX_AND_PARTS:
        raise RequestError(f"prompt: at most {MAX_AND_PARTS} subprompts joined by AND (found {count}); each one "
                           "runs the model once more per step")


def check_chunks(counts: list[int], field: str = "prompt") -> None:
    """After tokenizing, before encoding: chunks per text and for the whole prompt."""
    if counts and max(counts) > MAX_CHUNKS:
        raise RequestError(f"{field}: at most {MAX_CHUNKS} chunks of 75 tokens (BREAK starts one); "
                           f"it has {max(counts)}")
    if sum(counts) > MAX_ENCODED_CHUNKS:
        raise RequestError(f"{field}: its texts over the steps make {sum(counts)} chunks of 75 tokens to encode; "
                           f"at most {MAX_ENCODED_CHUNKS}")


def check_prompts(prompt: str, negative_prompt: str, steps: int) -> None:
    """Both prompts of a request as the engine will schedule them (network tags split off), checked
    at admission: a prompt over a limit is refused before it takes a place in the queue."""
    from studio.prompting.composable import split_and
    from studio.prompting.networks import split_network_tags

    for field, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        text, tags = split_network_tags(text)
        if len(tags) > MAX_NETWORK_TAGS:
            raise RequestError(f"{field}: at most {MAX_NETWORK_TAGS} network tags such as <lora:name:1> "
                               f"(found {len(tags)})")
        plan_schedule(text, steps, field)
    subprompts = split_and(split_network_tags(prompt)[0])
    check_parts(len(subprompts))
    for text, _ in subprompts if len(subprompts) > 1 else ():
        plan_schedule(text, steps, "prompt")
