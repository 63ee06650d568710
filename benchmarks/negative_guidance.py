"""Issue 26 §3: A1111's "Negative Guidance minimum sigma" (`s_min_uncond`), per image.

At steps whose sigma is below `s_min_uncond`, every other step runs the conditional half of the
CFG batch only (studio/generation/speedups.py, A1111's rule). Measured as whole images at the
studio's default sampler, steps and CFG: off against each threshold, interleaved, process CPU time,
with the mean pixel difference each threshold makes and how many UNet batches it halved.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

THRESHOLDS = (1.0, 3.0)  # sigma: about the last third / the last half of a 20-step Euler schedule on SD1.5


def halved_steps(engine: Any, request: Any, threshold: float) -> int:
    """UNet calls of `request` that the rule runs on the conditional half only (every other step below the threshold)."""
    from studio.generation.speedups import _sigma  # the rule's own sigma, so the count is what it skipped

    pipe = engine.models.current().pipe
    scheduler = pipe.scheduler
    scheduler.set_timesteps(request.steps)
    sigmas = [_sigma(scheduler, t) for t in scheduler.timesteps]
    return sum(1 for step, sigma in enumerate(sigmas) if step % 2 and sigma < threshold)


def measure(size: int, steps: int, rounds: int, engine: Any,
            compare: Callable[[dict[str, Callable[[], Any]], int, str], tuple[dict[str, Any], dict[str, Any]]],
            difference: Callable[[Any, Any], float]) -> dict[str, Any]:
    from studio.request import GenerationRequest

    request = GenerationRequest(prompt="a red circle on a blue background", seed=1, width=size, height=size,
                                steps=steps)

    def image(threshold: float) -> Any:
        return engine.run(request.replace(s_min_uncond=threshold)).images[0].image

    cases = {"off": partial(image, 0.0), **{f"s_min_uncond {t:g}": partial(image, t) for t in THRESHOLDS}}
    engine.run(request.replace(steps=1))  # kernel set-up at this size, outside the timings
    timings, images = compare(cases, rounds, f"negative guidance minimum sigma {size}² per image")
    base = timings["off"]["cpu_median_s"]
    return {"settings": f"{size}x{size}, {request.sampler_name} {steps} steps CFG {request.cfg_scale:g}, "
                        f"{rounds} round(s), interleaved",
            "cases": {name: {**timings[name], "speedup_vs_off": round(base / timings[name]["cpu_median_s"], 2),
                             "pixel_difference_vs_off": difference(images[name], images["off"]),
                             "halved_unet_calls": 0 if name == "off" else halved_steps(
                                 engine, request, float(name.split()[-1])),
                             "unet_calls": steps}
                      for name in cases}}
