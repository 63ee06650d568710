"""The model's current guess of the clean image (x̂0) at each step, for live previews and for the
partial image an Interrupt keeps (A1111 and ComfyUI preview x̂0, never the noisy x_t).

    watch(scheduler, sink) wraps scheduler.step so that every step hands sink(x̂0) the denoised
    latents of the whole batch (scaled as the UNet sees them, like x_t).

x̂0 is the step output's `pred_original_sample` (Euler, Euler a, DDIM, LMS, DPM2, Heun, LCM), or the
multistep solvers' converted model output (DPM++ / UniPC keep x̂0 there), or else computed from ε
(or v) and the step's noise level: x̂0 = x − σ·ε on k-diffusion-scaled samples, (x − √(1−ᾱ)·ε)/√ᾱ
on unscaled ones."""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch

Sink = Callable[[torch.Tensor], None]


def watch(scheduler: Any, sink: Sink) -> Any:
    """Wrap `scheduler.step` once (per scheduler object); returns the scheduler."""
    if getattr(scheduler, "_studio_denoised_sink", None) is not None:
        scheduler._studio_denoised_sink = sink
        return scheduler
    original = scheduler.step
    scheduler._studio_denoised_sink = sink

    @functools.wraps(original)  # pipelines read step()'s signature to pass `generator` and `eta`
    def step(model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        wanted_dict = kwargs.pop("return_dict", True)
        sigma = _sigma_before(scheduler, timestep)
        output = original(model_output, timestep, sample, *args, return_dict=True, **kwargs)
        try:
            x0 = denoised(scheduler, output, model_output, timestep, sample, sigma)
        except (IndexError, KeyError, TypeError, ValueError, RuntimeError):
            x0 = None  # an unusual scheduler: the preview falls back to x_t, the image is unaffected
        if x0 is not None:
            scheduler._studio_denoised_sink(x0.detach())
        return output if wanted_dict else output.to_tuple()

    scheduler.step = step
    return scheduler


def _sigma_before(scheduler: Any, timestep: Any) -> float | None:
    """The step's σ (k-diffusion style) read before step() advances the scheduler's index."""
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is None:
        return None
    index = getattr(scheduler, "step_index", None)
    if index is None and hasattr(scheduler, "index_for_timestep"):
        index = scheduler.index_for_timestep(timestep)
    return None if index is None else float(sigmas[min(int(index), len(sigmas) - 1)])


def denoised(scheduler: Any, output: Any, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             sigma: float | None) -> torch.Tensor | None:
    """x̂0 of one step (see the module's docstring)."""
    x0 = getattr(output, "pred_original_sample", None)
    if x0 is None:
        x0 = getattr(output, "denoised", None)  # LCM
    if x0 is not None:
        return x0
    config = scheduler.config
    outputs = getattr(scheduler, "model_outputs", None)
    if outputs and outputs[-1] is not None and (
            str(config.get("algorithm_type", "")).endswith("dpmsolver++") or config.get("predict_x0", False)):
        return outputs[-1]
    prediction = config.get("prediction_type", "epsilon")
    if float(getattr(scheduler, "init_noise_sigma", 1.0)) > 1.0 and sigma is not None:  # x = x0 + σ·ε
        if prediction == "v_prediction":
            return model_output * (-sigma / (sigma ** 2 + 1) ** 0.5) + sample / (sigma ** 2 + 1)
        return sample - sigma * model_output if prediction == "epsilon" else model_output
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        return None
    t = int(timestep.item() if torch.is_tensor(timestep) else timestep)
    alpha = alphas[min(max(t, 0), len(alphas) - 1)].to(sample.device, sample.dtype)
    if prediction == "v_prediction":
        return alpha.sqrt() * sample - (1 - alpha).sqrt() * model_output
    if prediction == "sample":
        return model_output
    return (sample - (1 - alpha).sqrt() * model_output) / alpha.sqrt()
