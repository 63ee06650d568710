"""The one admission point: a job's limits and costs are checked here, before it takes a place in the
queue and before any parse, decode or expansion work (docs/security.md, "Resources").

Every route, tab, CLI command, script and reproduction enters through `admit`; the engine checks
again what it computes itself, but nothing reaches it that admission would refuse.
"""
from __future__ import annotations

from studio.prompting.limits import check_prompts
from studio.request import GenerationRequest


def admit(request: GenerationRequest) -> GenerationRequest:
    """The request when it may run: every field valid, and its prompts within what a prompt may cost."""
    request = request.validate()
    check_prompts(request.prompt, request.negative_prompt, request.steps)
    return request
