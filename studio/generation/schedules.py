"""A1111 1.10's schedule types as sigma schedules: pure functions of the step count and the model's
noise levels, written from the formulas of k-diffusion (Karras, Exponential, Polyexponential) and
A1111's `sd_schedulers.py` (the others).

Every function returns the sigmas a k-diffusion sampler walks, highest first, ending in 0 (KL
Optimal, as in A1111, ends at the model's lowest sigma). `ModelSigmas` is A1111's "inner model":
the model's 1000 discrete noise levels with the log-sigma interpolation between them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch


class ModelSigmas:
    """The model's discrete noise levels (sigma_t = sqrt((1 - ᾱ_t) / ᾱ_t)) and the continuous
    timestep between them (k-diffusion's DiscreteSchedule, not quantized: A1111's default)."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        alphas = alphas_cumprod.to(torch.float64)
        self.sigmas = ((1 - alphas) / alphas).sqrt()
        self.log_sigmas = self.sigmas.log()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ModelSigmas":
        """From a diffusers scheduler config (its betas, trained betas or zero-terminal-SNR rescale:
        Euler's reading of the config, which sets the last ᾱ to 2**-24 on zero SNR)."""
        from diffusers import EulerDiscreteScheduler

        keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                "rescale_betas_zero_snr")
        return cls(EulerDiscreteScheduler(**{key: config[key] for key in keys if key in config}).alphas_cumprod)

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor | float) -> torch.Tensor:
        log_sigma = torch.as_tensor(sigma, dtype=torch.float64).log()
        dists = log_sigma - self.log_sigmas[:, None]
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(self.log_sigmas) - 2)
        w = ((self.log_sigmas[low] - log_sigma) / (self.log_sigmas[low] - self.log_sigmas[low + 1])).clamp(0, 1)
        return ((1 - w) * low + w * (low + 1)).view(log_sigma.shape)

    def t_to_sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, len(self.sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def uniform(self, n: int) -> torch.Tensor:
        """A1111's "Uniform" (and k-diffusion's default): n timesteps evenly from the last to 0."""
        return _zero(self.t_to_sigma(torch.linspace(len(self.sigmas) - 1, 0, n, dtype=torch.float64)))


def _zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas.to(torch.float64), sigmas.new_zeros(1, dtype=torch.float64)])


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _zero((hi + ramp * (lo - hi)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    return _zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    ramp = torch.linspace(1, 0, n, dtype=torch.float64) ** rho
    return _zero((ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)).exp())


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """"Optimal" schedule under the KL bound (Sabour et al. 2024): evenly spaced in arctan(sigma)."""
    i = torch.arange(n + 1, dtype=torch.float64)
    return torch.tan(i / n * math.atan(sigma_min) + (1 - i / n) * math.atan(sigma_max))


# Align Your Steps (Sabour et al. 2024, NVIDIA's published 10-step tables), log-linearly resampled.
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def align_your_steps(n: int, sdxl: bool = False) -> torch.Tensor:
    table = np.array(AYS_SDXL if sdxl else AYS_SD15)
    if n != len(table):
        ys = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(table)), np.log(table[::-1]))
        table = np.exp(ys)[::-1].copy()
    return _zero(torch.tensor(table, dtype=torch.float64))


def sgm_uniform(n: int, model: ModelSigmas) -> torch.Tensor:
    """n timesteps evenly from sigma_max's to sigma_min's, the last one left out (SGM's "trailing")."""
    ts = torch.linspace(float(model.sigma_to_t(model.sigma_max)), float(model.sigma_to_t(model.sigma_min)), n + 1,
                        dtype=torch.float64)[:-1]
    return _zero(model.t_to_sigma(ts))


def normal(n: int, model: ModelSigmas) -> torch.Tensor:
    ts = torch.linspace(float(model.sigma_to_t(model.sigma_max)), float(model.sigma_to_t(model.sigma_min)), n,
                        dtype=torch.float64)
    return _zero(model.t_to_sigma(ts))


def simple(n: int, model: ModelSigmas) -> torch.Tensor:
    """Every (1000/n)-th of the model's own sigmas, from the top."""
    stride = len(model.sigmas) / n
    return _zero(torch.stack([model.sigmas[-(1 + int(x * stride))] for x in range(n)]))


def ddim(n: int, model: ModelSigmas) -> torch.Tensor:
    """DDIM's uniform timesteps 1, 1+c, 1+2c, … (c = 1000 // n), highest first."""
    stride = max(len(model.sigmas) // n, 1)
    return _zero(model.sigmas[1::stride].flip(0))


BETA_ALPHA = BETA_BETA = 0.6  # A1111's beta_dist_alpha / beta_dist_beta defaults


def beta(n: int, sigma_min: float, sigma_max: float, alpha: float = BETA_ALPHA, b: float = BETA_BETA) -> torch.Tensor:
    """"Beta Sampling is All You Need" (Lee et al. 2024) as A1111 has it: quantiles of Beta(α, β)
    mapped linearly between sigma_min and sigma_max."""
    from scipy import stats

    quantiles = stats.beta.ppf(1 - np.linspace(0, 1, n), alpha, b)
    return _zero(torch.tensor(sigma_min + quantiles * (sigma_max - sigma_min), dtype=torch.float64))


@dataclass(frozen=True)
class Schedule:
    """A1111's `Scheduler` record: API name, UI label, and the two facts /sdapi/v1/schedulers lists."""

    name: str
    label: str
    function: Callable[..., torch.Tensor] | None
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: tuple[str, ...] = ()


SCHEDULES: dict[str, Schedule] = {s.label: s for s in (
    Schedule("automatic", "Automatic", None),
    Schedule("uniform", "Uniform", lambda n, model: model.uniform(n), need_inner_model=True),
    Schedule("karras", "Karras", karras, default_rho=7.0),
    Schedule("exponential", "Exponential", exponential),
    Schedule("polyexponential", "Polyexponential", polyexponential, default_rho=1.0),
    Schedule("sgm_uniform", "SGM Uniform", sgm_uniform, need_inner_model=True, aliases=("SGMUniform",)),
    Schedule("kl_optimal", "KL Optimal", kl_optimal),
    Schedule("align_your_steps", "Align Your Steps", align_your_steps),
    Schedule("simple", "Simple", simple, need_inner_model=True),
    Schedule("normal", "Normal", normal, need_inner_model=True),
    Schedule("ddim", "DDIM", ddim, need_inner_model=True),
    Schedule("beta", "Beta", beta, need_inner_model=True),
)}


def sigmas_for(label: str, n: int, model: ModelSigmas, sdxl: bool = False) -> torch.Tensor:
    """The schedule's n+1 sigmas on this model ("Automatic" is k-diffusion's default: Uniform)."""
    schedule = SCHEDULES[label]
    if schedule.function is None or label == "Uniform":
        return model.uniform(n)
    if label == "Align Your Steps":
        return align_your_steps(n, sdxl)
    if schedule.need_inner_model and label != "Beta":
        return schedule.function(n, model)
    return schedule.function(n, model.sigma_min, model.sigma_max)
