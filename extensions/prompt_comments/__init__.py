"""Prompt comments: a prompt line starting with # is left out (of the generation and the infotext)."""
from __future__ import annotations

from studio.api import ExtensionApi, GenerationRequest


def register(api: ExtensionApi) -> None:
    api.on_before_generate(drop_comments)


def drop_comments(request: GenerationRequest) -> GenerationRequest | None:
    lines = request.prompt.splitlines()
    kept = [line for line in lines if not line.lstrip().startswith("#")]
    if len(kept) == len(lines):
        return None  # nothing to change
    return request.replace(prompt="\n".join(kept).strip())
