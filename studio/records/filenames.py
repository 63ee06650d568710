"""A1111's `samples_filename_pattern`: [seed], [prompt_words], [model_name], [date] ... in a file name.

The name of a saved image is `NNNNN-<pattern applied>.png` as in A1111 (the empty pattern means
`[seed]`, A1111's default when images go to dated folders). Parts are cleaned as A1111 does
(`sanitize_filename_part`): no path separators or characters Windows refuses, at most 128 characters.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Callable, Mapping

from studio.request import GenerationRequest, RequestError

MAX_PART = 128  # A1111's max_filename_part_length
MAX_PROMPT_WORDS = 8  # A1111's directories_max_prompt_words
INVALID = '#<>:"/\\|?*\n\r\t'
_TOKEN = re.compile(r"\[(\w+)(?:<([^>]*)>)?\]")
_NON_LETTERS = re.compile(r"[\s,/\\]+")


def _words(text: str) -> str:
    return " ".join([word for word in _NON_LETTERS.split(text) if word][:MAX_PROMPT_WORDS])


Filler = Callable[[GenerationRequest, str, str], str]  # (request of the image, model name, argument)
TOKENS: Mapping[str, Filler] = {
    "seed": lambda r, m, a: str(r.seed),
    "steps": lambda r, m, a: str(r.steps),
    "cfg": lambda r, m, a: f"{r.cfg_scale:g}",
    "width": lambda r, m, a: str(r.width),
    "height": lambda r, m, a: str(r.height),
    "sampler": lambda r, m, a: r.sampler_name,
    "scheduler": lambda r, m, a: r.scheduler,
    "model_name": lambda r, m, a: m,
    "prompt": lambda r, m, a: r.prompt,
    "prompt_spaces": lambda r, m, a: r.prompt,
    "prompt_words": lambda r, m, a: _words(r.prompt) or "empty prompt",
    "negative_prompt": lambda r, m, a: r.negative_prompt,
    "clip_skip": lambda r, m, a: str(r.clip_skip),
    "denoising": lambda r, m, a: f"{r.denoising_strength:g}" if r.mode != "txt2img" else "",
    "date": lambda r, m, a: _dt.date.today().isoformat(),
    "datetime": lambda r, m, a: _dt.datetime.now().strftime(a or "%Y%m%d%H%M%S"),
    "none": lambda r, m, a: "",
}


def check_pattern(pattern: str) -> None:
    """Refuse a pattern naming a token A1111 does not have here (a typo would otherwise be kept as text)."""
    unknown = sorted({name for name, _ in _TOKEN.findall(pattern) if name not in TOKENS})
    if unknown:
        raise RequestError(f"samples_filename_pattern: unknown token(s) {', '.join('[' + n + ']' for n in unknown)}; "
                           f"known: {' '.join('[' + n + ']' for n in TOKENS)}")
    if any(sep in _TOKEN.sub("", pattern) for sep in "/\\"):
        raise RequestError("samples_filename_pattern: a file name cannot contain / or \\")


def sanitize(text: str) -> str:
    text = text.translate({ord(c): "_" for c in INVALID}).lstrip(" ")[:MAX_PART]
    return text.rstrip(" .")


def decoration(pattern: str, request: GenerationRequest, model_name: str) -> str:
    """The part after `NNNNN-`: the pattern with its tokens filled from the image's request."""
    def fill(match: re.Match[str]) -> str:
        filler = TOKENS.get(match.group(1))
        return sanitize(filler(request, model_name, match.group(2) or "")) if filler else match.group(0)

    return sanitize(_TOKEN.sub(fill, pattern or "[seed]")) or str(request.seed)
