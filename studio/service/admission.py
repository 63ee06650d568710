"""The one admission point: a job's limits and costs are checked here, before it takes a place in the
queue and before any parse, decode or expansion work (docs/security.md, "Resources").

Every route, tab, CLI command, script and reproduction enters through `admit`; the engine checks
again what it computes itself, but nothing reaches it that admission would refuse. Images a request
brings are admitted from their headers (`admit_inputs`) before any of them is decoded; Extras jobs
by the size of what they would make (`admit_extras`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from studio.errors import RequestError
from studio.generation.extras_request import ExtrasRequest
from studio.prompting.limits import check_prompts
from studio.request import DEFAULT_CONTROL_UNITS, MAX_TOTAL_PIXELS, GenerationRequest

# What the images of one request may hold together, counted from their headers before decoding:
# each is at most 16.8 MP (images.MAX_INPUT_PIXELS); together at most 64 MP (~200 MB of RGB).
MAX_REQUEST_INPUT_PIXELS = 2**26
# What one job may make, counting the final size of every pass of every image (hires fix, outpaint
# extension, Extras upscaling) x batch_size x n_iter: 64 MP.
MAX_JOB_PIXELS = MAX_TOTAL_PIXELS

Size = tuple[int, int]


def admit(request: GenerationRequest, control_units: int = DEFAULT_CONTROL_UNITS) -> GenerationRequest:
    """The request when it may run: every field valid, at most `control_units` ControlNet units (the
    server's `control_net_unit_count`), its final pixels within the job cap, and its prompts within
    what a prompt may cost."""
    if len(request.controlnet_units) > control_units:
        raise RequestError(f"at most {control_units} ControlNet units (control_net_unit_count; "
                           f"got {len(request.controlnet_units)})")
    request = request.validate()
    check_job_pixels(request)
    check_prompts(request.prompt, request.negative_prompt, request.steps)
    return request


def final_size(request: GenerationRequest) -> Size | None:
    """The size of an image after its last pass: hires fix's second pass, else the (outpainted) canvas."""
    width, height = request.width, request.height
    if (width is None or height is None) and request.init_image is not None:
        width, height = request.init_image.size  # img2img at the source's size
    if width is None or height is None:
        return None
    if request.enable_hr and request.init_image is None:
        width, height = request.hires_size()
    if request.outpainting and request.init_image is not None:
        width, height = request.outpaint_canvas()  # outpainting samples and outputs the extended canvas
    return int(width), int(height)


def check_job_pixels(request: GenerationRequest) -> None:
    size = final_size(request)
    if size is None:
        return
    count = request.batch_size * request.n_iter
    total = count * size[0] * size[1]
    if total > MAX_JOB_PIXELS:
        raise RequestError(f"this job would make {count} image(s) of {size[0]}x{size[1]} (after hires fix / outpainting): "
                           f"{total / 2**20:.0f} megapixels, more than the job limit of {MAX_JOB_PIXELS // 2**20} "
                           "megapixels; lower batch_size, n_iter, hr_scale or the size")


def admit_inputs(sizes: Sequence[tuple[str, Size]]) -> None:
    """The images of one request (name, size read from the header), together, before any is decoded."""
    total = sum(width * height for _, (width, height) in sizes)
    if total > MAX_REQUEST_INPUT_PIXELS:
        raise RequestError(f"the {len(sizes)} images of this request hold {total / 2**20:.0f} megapixels together, "
                           f"more than the limit of {MAX_REQUEST_INPUT_PIXELS // 2**20} megapixels per request; "
                           "send fewer or smaller images")


def admit_extras(sizes: Sequence[Size], values: Mapping[str, Any]) -> ExtrasRequest:
    """An Extras job: its fields, and what its upscaled images would hold, within the job cap."""
    request = ExtrasRequest.from_dict(values)
    outputs = [request.target_size_of(width, height) for width, height in sizes]
    total = sum(width * height for width, height in outputs)
    if total > MAX_JOB_PIXELS:
        raise RequestError(f"the upscaled image(s) would hold {total / 2**20:.0f} megapixels, more than the job limit "
                           f"of {MAX_JOB_PIXELS // 2**20} megapixels; lower the scale or send fewer images")
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
