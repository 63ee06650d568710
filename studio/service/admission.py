"""The one admission point: a job's limits and costs are checked here, before it takes a place in the
queue and before any parse, decode or expansion work (docs/security.md, "Resources").

Every route, tab, CLI command, script and reproduction enters through `admit`; the engine checks
again what it computes itself, but nothing reaches it that admission would refuse.
"""
from __future__ import annotations

from studio.prompting.limits import check_prompts
from studio.request import DEFAULT_CONTROL_UNITS, GenerationRequest, RequestError


def admit(request: GenerationRequest, control_units: int = DEFAULT_CONTROL_UNITS) -> GenerationRequest:
    """The request when it may run: every field valid, at most `control_units` ControlNet units (the
    server's `control_net_unit_count`), and its prompts within what a prompt may cost."""
    if len(request.controlnet_units) > control_units:
        raise RequestError(f"at most {control_units} ControlNet units (control_net_unit_count; "
                           f"got {len(request.controlnet_units)})")
    request = request.validate()
    check_prompts(request.prompt, request.negative_prompt, request.steps)
    return request


MAX_DETECT_IMAGES = 16  # /controlnet/detect: images per call
MIN_PROCESSOR_RES, MAX_PROCESSOR_RES = 64, 2048


def admit_detection(images: int, resolution: int) -> None:
    """/controlnet/detect's limits, before any image is decoded: how many images, at what size."""
    if images == 0:
        raise RequestError("No image selected: give controlnet_input_images")
    if images > MAX_DETECT_IMAGES:
        raise RequestError(f"at most {MAX_DETECT_IMAGES} controlnet_input_images per call (got {images})")
    if not MIN_PROCESSOR_RES <= resolution <= MAX_PROCESSOR_RES:
        raise RequestError(f"controlnet_processor_res must be between {MIN_PROCESSOR_RES} and {MAX_PROCESSOR_RES} "
                           f"(got {resolution})")
