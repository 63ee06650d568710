"""ZeroGPU on Hugging Face Spaces: a Space with ZeroGPU lends a GPU only inside functions wrapped in
`@spaces.GPU(duration=...)`, for at most that many seconds. The studio wraps its one generation
entry (Studio.submit's run) with it, the duration sized from the job's steps and pixels.

`spaces.GPU` is a no-op outside ZeroGPU, so on CPU Spaces the job runs as it does here. Nothing is
imported unless SPACE_ID is set and the `spaces` package is installed (it is not a dependency)."""
from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Mapping, TypeVar

from studio.request import GenerationRequest

F = TypeVar("F", bound=Callable[..., Any])

# Seconds per step per megapixel image on a ZeroGPU card (an H200 runs SDXL 1024x1024 at about
# 8 steps/s; this is ~2x that cost, so a job never runs out of GPU time midway), plus start-up.
SECONDS_PER_STEP_MEGAPIXEL = 0.25
OVERHEAD_SECONDS = 10
MIN_SECONDS, MAX_SECONDS = 15, 300


def gpu_seconds(request: GenerationRequest, *_args: Any, **_kwargs: Any) -> int:
    """The GPU time to ask for: every step of every image at its size, hires pass included.
    Takes the wrapped function's arguments (spaces.GPU calls it with them)."""
    width, height = request.width or 1024, request.height or 1024  # unresolved: assume the largest family
    work = request.steps * width * height
    if request.enable_hr and request.init_image is None:
        hr_width, hr_height = request.replace(width=width, height=height).hires_size()
        work += (request.hr_second_pass_steps or request.steps) * hr_width * hr_height
    seconds = OVERHEAD_SECONDS + SECONDS_PER_STEP_MEGAPIXEL * work / 2**20 * request.batch_size * request.n_iter
    return int(min(MAX_SECONDS, max(MIN_SECONDS, seconds)))


def gpu_wrapper(environ: Mapping[str, str] = os.environ) -> Callable[[F], F] | None:
    """`spaces.GPU` with the job's duration when running on a Space with the `spaces` package; else None."""
    if not environ.get("SPACE_ID"):
        return None
    try:
        spaces = importlib.import_module("spaces")
    except ImportError:
        return None

    def wrap(function: F) -> F:
        return spaces.GPU(function, duration=gpu_seconds)

    return wrap
