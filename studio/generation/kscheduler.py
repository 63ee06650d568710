"""KScheduler: k-diffusion style samplers on any A1111 schedule type, behind diffusers' scheduler
interface (set_timesteps / scale_model_input / step / add_noise / init_noise_sigma), so the
existing pipelines, img2img strength, inpainting and ControlNet run them unchanged.

A sampler (`ksamplers.py`) is a generator asking for one model evaluation at a time; the pipeline
loop gives one per timestep. The timesteps are the evaluations the sampler will ask for, found by
a dry run on zeros (they depend only on the schedule). When the pipeline starts later (img2img:
`set_begin_index`), the sampler runs from that step and any evaluations left over return the
finished latents unchanged. The loop's timestep is corrected in place to the one asked for, so
the UNet always sees the sampler's sigma (DPM adaptive picks its sigmas as it goes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from studio.generation import dpm_solver, ksamplers
from studio.generation.schedules import ModelSigmas, sigmas_for

CFGPP_SCALE = 1 / 12.5  # A1111's DDIM CFG++ maps CFG 0..12.5 onto CFG++'s 0..1


@dataclass(frozen=True)
class KSampler:
    function: Callable[..., ksamplers.Sampler]
    discard_next_to_last_sigma: bool = False  # A1111's DPM2 / DPM2 a: one step more, the one before 0 dropped
    needs_uncond: bool = False  # CFG++ renoises along the unconditional prediction
    budget: Callable[[int], int] | None = None  # adaptive: model evaluations allowed for n steps
    automatic: str = "Uniform"  # the schedule "Automatic" means for this sampler


K_SAMPLERS: dict[str, KSampler] = {
    "euler": KSampler(ksamplers.euler),
    "euler_ancestral": KSampler(ksamplers.euler_ancestral),
    "heun": KSampler(ksamplers.heun),
    "dpm_2": KSampler(ksamplers.dpm_2, discard_next_to_last_sigma=True),
    "dpm_2_ancestral": KSampler(ksamplers.dpm_2_ancestral, discard_next_to_last_sigma=True),
    "lms": KSampler(ksamplers.lms),
    "dpmpp_2s_ancestral": KSampler(ksamplers.dpmpp_2s_ancestral),
    "dpmpp_sde": KSampler(ksamplers.dpmpp_sde),
    "dpmpp_2m": KSampler(ksamplers.dpmpp_2m),
    "dpmpp_2m_sde": KSampler(ksamplers.dpmpp_2m_sde),
    "dpmpp_2m_sde_heun": KSampler(ksamplers.dpmpp_2m_sde_heun),
    "dpmpp_3m_sde": KSampler(ksamplers.dpmpp_3m_sde),
    "dpm_fast": KSampler(dpm_solver.dpm_fast),
    "dpm_adaptive": KSampler(dpm_solver.dpm_adaptive, budget=lambda n: max(3 * n, 12)),
    "restart": KSampler(ksamplers.restart),
    # DDIM in sigma space is Euler ancestral with DDIM's eta (0, A1111's default: plain Euler): its
    # σ_t(η) noise is exactly k-diffusion's sigma_up for the same eta.
    "ddim": KSampler(ksamplers.euler_ancestral, automatic="DDIM"),
    "plms": KSampler(ksamplers.plms, automatic="DDIM"),
    "ddim_cfgpp": KSampler(ksamplers.ddim_cfgpp, needs_uncond=True, automatic="DDIM"),
}


class _DryRun:
    """Noise of zeros: the dry run only learns which sigmas the sampler asks for."""

    def __init__(self, eta: float, budget: int) -> None:
        self.eta, self.budget = eta, budget

    def randn(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def brownian(self, x: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
        return torch.zeros_like(x)


class _Noise:
    """The run's noise: the pipeline's generators (one per image), Brownian trees from the seeds."""

    def __init__(self, owner: "KScheduler", sigmas: list[float]) -> None:
        self.owner, self.eta, self.budget = owner, float(owner.config.eta), owner.budget
        positive = [s for s in sigmas if s > 0]
        self.range = (min(positive), max(positive)) if positive else (1e-3, 1.0)
        self.trees: list[Any] | None = None

    def randn(self, x: torch.Tensor) -> torch.Tensor:
        return randn_tensor(x.shape, generator=self.owner.generator, device=x.device, dtype=x.dtype)

    def brownian(self, x: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
        """k-diffusion's BrownianTreeNoiseSampler: one tree per image from its seed (A1111's)."""
        try:
            import torchsde
        except ImportError:  # pragma: no cover - torchsde ships with the studio's dependencies
            return self.randn(x)
        low, high = self.range
        if self.trees is None:
            seeds = self.owner.noise_sampler_seed
            seeds = list(seeds) if isinstance(seeds, (list, tuple)) else [seeds] * x.shape[0]
            w0 = torch.zeros_like(x[0], dtype=torch.float32, device="cpu")
            self.trees = [torchsde.BrownianTree(torch.tensor(low), w0, torch.tensor(high), entropy=seed)
                          for seed in seeds[: x.shape[0]]]
        a, b = sorted((min(max(sigma, low), high), min(max(sigma_next, low), high)))
        sign = 1.0 if sigma < sigma_next else -1.0
        if b - a < 1e-12:
            return torch.zeros_like(x)
        w = torch.stack([tree(torch.tensor(a), torch.tensor(b)) for tree in self.trees]) * sign
        return (w / math.sqrt(b - a)).to(device=x.device, dtype=x.dtype)


class KScheduler(SchedulerMixin, ConfigMixin):
    """A k-diffusion sampler over the model's own noise levels; see the module docstring."""

    order = 1
    _compatibles = [e.name for e in KarrasDiffusionSchedulers]  # their config keys are not "unexpected"

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Any = None, prediction_type: str = "epsilon",
                 rescale_betas_zero_snr: bool = False, sampler: str = "euler", schedule: str = "Automatic",
                 sdxl: bool = False, eta: float = 1.0) -> None:
        if sampler not in K_SAMPLERS:
            raise ValueError(f"unknown k-diffusion sampler {sampler!r}")
        self.spec = K_SAMPLERS[sampler]
        self.model = ModelSigmas.from_config(self.config)
        self.noise_sampler_seed: Any = None  # the images' seeds (pipelines.scheduler_for sets them)
        self.uncond_source: Callable[[], Any] | None = None  # CFG++: the UNet's last output
        self.generator: Any = None
        self.set_timesteps(1)

    # -- the plan --------------------------------------------------------------------------------
    @property
    def needs_uncond(self) -> bool:
        return self.spec.needs_uncond

    @property
    def budget(self) -> int:
        """Adaptive samplers: the model evaluations the run may spend (the loop's length from its start)."""
        if not self.spec.budget:
            return 0
        return getattr(self, "_budget", None) or self.spec.budget(self.num_inference_steps)

    def _schedule(self, n: int) -> list[float]:
        label = self.config.schedule if self.config.schedule != "Automatic" else self.spec.automatic
        if self.spec.discard_next_to_last_sigma:
            sigmas = sigmas_for(label, n + 1, self.model, self.config.sdxl)
            return torch.cat([sigmas[:-2], sigmas[-1:]]).tolist()
        return sigmas_for(label, n, self.model, self.config.sdxl).tolist()

    def _plan(self, start: int) -> list[float]:
        """The sigmas the sampler evaluates from step `start` on (a dry run)."""
        run = self.spec.function(self._sigmas[start:], torch.zeros(1), _DryRun(float(self.config.eta), self.budget))
        asked: list[float] = []
        try:
            request = next(run)
            while True:
                asked.append(request[1])
                request = run.send((torch.zeros(1), request[0], None))
        except StopIteration:
            pass
        if self.spec.budget:  # adaptive: the loop runs the whole budget, sigmas are placeholders
            asked = (asked + asked[-1:] * self.budget)[: self.budget]
        return asked

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None, **_: Any) -> None:
        self.num_inference_steps = num_inference_steps
        self._budget = 0
        self._sigmas = self._schedule(num_inference_steps)
        evaluations = self._plan(0)
        self.order = max(1, math.ceil((len(evaluations) - 1) / max(num_inference_steps, 1)))
        self.sigmas = torch.tensor(evaluations, dtype=torch.float32)
        self.timesteps = self.model.sigma_to_t(torch.tensor(evaluations)).to(torch.float32).to(device or "cpu")
        self.set_begin_index(0)

    def set_begin_index(self, begin_index: int = 0) -> None:
        """img2img starts at step `begin_index // order`; later when that step's evaluations would not
        fit in the loop that is left (an irregular sampler such as Restart)."""
        self._begin_index, start = begin_index, begin_index // self.order
        room = len(self.timesteps) - begin_index
        self._budget = max(room, 1)  # adaptive: the evaluations the loop has left
        plan = self._plan(start)
        while len(plan) > room and start < len(self._sigmas) - 2 and not self.spec.budget:
            start += 1
            plan = self._plan(start)
        self._start, self._planned = start, plan
        self._run: Any = None
        self._asked: tuple[torch.Tensor, float] | None = None
        self._finished: torch.Tensor | None = None

    @property
    def begin_index(self) -> int:
        return self._begin_index

    @property
    def init_noise_sigma(self) -> float:
        return self._planned[0] if self._planned else 1.0

    # -- the loop --------------------------------------------------------------------------------
    def _ensure_started(self, sample: torch.Tensor) -> None:
        if self._run is None and self._finished is None:
            self._run = self.spec.function(self._sigmas[self._start:], sample, _Noise(self, self._sigmas[self._start:]))
            try:
                self._asked = next(self._run)
            except StopIteration:  # nothing left to denoise (a start at the last sigma)
                self._finished = sample

    def _sigma(self) -> float:
        return self._asked[1] if self._asked is not None and self._finished is None else 0.0

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        self._ensure_started(sample)
        sigma = self._sigma()
        if torch.is_tensor(timestep) and timestep.numel() == 1 and sigma > 0:
            wanted = float(self.model.sigma_to_t(sigma))
            if abs(float(timestep) - wanted) > 1e-4:
                timestep.fill_(wanted)  # the loop's own timestep: the UNet sees the sampler's sigma
        return sample / math.sqrt(sigma ** 2 + 1)

    def _denoised(self, output: torch.Tensor, sample: torch.Tensor, sigma: float) -> torch.Tensor:
        kind = self.config.prediction_type
        if kind == "epsilon":
            return sample - sigma * output
        if kind == "v_prediction":
            return sample / (sigma ** 2 + 1) - output * sigma / math.sqrt(sigma ** 2 + 1)
        return output  # "sample"

    def _uncond(self, model_output: torch.Tensor) -> torch.Tensor | None:
        last = self.uncond_source() if self.uncond_source is not None else None
        if torch.is_tensor(last) and last.shape[0] == 2 * model_output.shape[0]:
            return last.chunk(2)[0].to(model_output)
        return None

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, generator: Any = None,
             return_dict: bool = True, **_: Any) -> Any:
        self._ensure_started(sample)
        self.generator = generator
        sigma = self._sigma()
        uncond = self._uncond(model_output) if self.spec.needs_uncond else None
        if uncond is not None:
            model_output = uncond + (model_output - uncond) * CFGPP_SCALE
        denoised = self._denoised(model_output, sample, sigma) if sigma > 0 else sample
        if self._finished is not None:
            prev = self._finished  # an evaluation the sampler did not need: the result stays
        else:
            uncond_denoised = self._denoised(uncond, sample, sigma) if uncond is not None else None
            try:
                self._asked = self._run.send((denoised, sample, uncond_denoised))
                prev = self._asked[0]
            except StopIteration as stop:
                self._finished = prev = stop.value
        if not return_dict:
            return (prev, denoised)
        return EulerDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=denoised)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: Any = None) -> torch.Tensor:
        """Noise at the level the next evaluation is at (img2img's start, inpainting's blend)."""
        sigma = self.init_noise_sigma if self._run is None and self._finished is None else self._sigma()
        return original_samples + noise * sigma

    def __len__(self) -> int:
        return self.config.num_train_timesteps
