"""ZeroGPU on Hugging Face Spaces: a Space with ZeroGPU lends a GPU only inside functions wrapped in
`@spaces.GPU(duration=...)`, for at most that many seconds. ZeroGPU runs such a function in a
forked worker process: its arguments and its result are pickled across, and the worker works on
its own copy of the memory it was forked with (the loaded models).

So the studio wraps one engine turn (one batch-count iteration, inside the job's queue turn: time
spent waiting in the queue is never GPU time), called with picklable arguments only: the engine is
found in the worker through the ENGINES registry, and the turn returns images, not pipelines.
Saving, infotexts and recipes happen back in the server process. Per-step progress and Interrupt
do not cross into the worker (a turn runs to its end); the duration is sized from the turn's steps
and pixels. `spaces.GPU` is a no-op outside ZeroGPU, so on a CPU Space this is the same run as
here. Nothing is imported unless SPACE_ID is set and the `spaces` package is installed."""
from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Mapping

from studio.request import GenerationRequest

# Seconds per step per megapixel image on a ZeroGPU card (an H200 runs SDXL 1024x1024 at about
# 8 steps/s; this is ~2x that cost, so a turn never runs out of GPU time midway), plus start-up.
SECONDS_PER_STEP_MEGAPIXEL = 0.25
OVERHEAD_SECONDS = 10
MIN_SECONDS, MAX_SECONDS = 15, 300

ENGINES: dict[int, Any] = {}  # registry: the engines a forked worker can find by key

GpuWrap = Callable[[Callable[..., Any], Callable[..., int]], Callable[..., Any]]


def gpu_seconds(request: GenerationRequest, *_args: Any, **_kwargs: Any) -> int:
    """The GPU time to ask for: every step of every image at its size, hires pass included."""
    width, height = request.width or 1024, request.height or 1024  # unresolved: assume the largest family
    work = request.steps * width * height
    if request.enable_hr and request.init_image is None:
        hr_width, hr_height = request.replace(width=width, height=height).hires_size()
        work += (request.hr_second_pass_steps or request.steps) * hr_width * hr_height
    seconds = OVERHEAD_SECONDS + SECONDS_PER_STEP_MEGAPIXEL * work / 2**20 * request.batch_size * request.n_iter
    return int(min(MAX_SECONDS, max(MIN_SECONDS, seconds)))


def gpu_wrapper(environ: Mapping[str, str] = os.environ) -> GpuWrap | None:
    """wrap(function, duration) -> spaces.GPU(function, duration=duration) when running on a Space
    with the `spaces` package; else None."""
    if not environ.get("SPACE_ID"):
        return None
    try:
        spaces = importlib.import_module("spaces")
    except ImportError:
        return None
    return lambda function, duration: spaces.GPU(function, duration=duration)


def engine_turn(key: int, request: GenerationRequest, iterations: tuple[int, int],
                prompts: dict[int, tuple[str, str]] | None) -> dict[str, Any]:
    """One turn in the (forked) GPU worker; returns only picklable parts of the RunResult."""
    engine = ENGINES[key]
    result = engine.run(request, prompts_for=prompts.__getitem__ if prompts else None, iterations=range(*iterations))
    return {"request": result.request, "images": result.images, "interrupted": result.interrupted,
            "controls": result.controls, "skipped": result.skipped, "networks": result.networks}


def turn_seconds(key: int, request: GenerationRequest, iterations: tuple[int, int], *_args: Any) -> int:
    return gpu_seconds(request.replace(n_iter=max(1, iterations[1] - iterations[0])))


class GpuEngine:
    """The engine as the queue's turns call it (Engine.run's signature), each turn on the GPU."""

    def __init__(self, engine: Any, wrap: GpuWrap) -> None:
        self.engine = engine
        self.key = id(engine)
        ENGINES[self.key] = engine
        self._turn = wrap(engine_turn, turn_seconds)

    def __getattr__(self, name: str) -> Any:  # everything but run is the engine's own
        return getattr(self.engine, name)

    def run(self, request: GenerationRequest, on_step: Any = None, prompts_for: Any = None, on_image: Any = None,
            control: Any = None, iterations: range | None = None) -> Any:
        from studio.generation.results import RunResult

        iterations = iterations if iterations is not None else range(request.n_iter)
        size = request.batch_size
        prompts = ({index: tuple(prompts_for(index)) for index in range(iterations.start * size, iterations.stop * size)}
                   if prompts_for else None)
        parts = self._turn(self.key, request, (iterations.start, iterations.stop), prompts)
        resolved = parts["request"]
        model = self.engine.models.get(resolved.model)  # the server's copy, for names, hashes and the recipe
        refiner = self.engine.refiner_for(model, resolved) if resolved.uses_refiner else None
        result = RunResult(resolved, model, parts["images"], parts["interrupted"], parts["controls"],
                           parts["skipped"], parts["networks"], refiner)
        for item in result.images if on_image is not None else ():
            on_image(result, item)
        return result
