"""Dynamic prompts through on_before_generate: the prompt is expanded from the image's seed and the
template is kept in the infotext ("Template", "Negative Template", as sd-dynamic-prompts writes them).

The saved prompt is the expanded one, so the PNG regenerates the same image with or without this
extension. A batch shares one expansion (the hook runs once per generation)."""
from __future__ import annotations

import random
from functools import partial
from pathlib import Path

from studio.api import ExtensionApi, GenerationRequest

from .syntax import expand, has_syntax, load_wildcards


def register(api: ExtensionApi) -> None:
    api.on_before_generate(partial(expand_request, api.directory / "wildcards"))


def expand_request(wildcards_dir: Path, request: GenerationRequest) -> tuple[GenerationRequest, dict[str, str]] | None:
    if not (has_syntax(request.prompt) or has_syntax(request.negative_prompt)):
        return None
    cards = load_wildcards(wildcards_dir)
    rng = random.Random(request.seed)
    prompt, negative = expand(request.prompt, rng, cards), expand(request.negative_prompt, rng, cards)
    params = {}
    if prompt != request.prompt:
        params["Template"] = request.prompt
    if negative != request.negative_prompt:
        params["Negative Template"] = request.negative_prompt
    return request.replace(prompt=prompt, negative_prompt=negative), params
