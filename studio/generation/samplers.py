"""The sampler registry: A1111's sampler names mapped to diffusers schedulers and k-diffusion samplers.

Each request gets a fresh scheduler built from the loaded model's scheduler config,
because schedulers keep per-run state (step index, model outputs).

A sampler is combined with a schedule type (A1111 >= 1.9's "Schedule type", all twelve of 1.10).
Where a diffusers scheduler has the schedule as an option and follows the model's noise schedule,
it runs (as before: same images); every other pair runs as a k-diffusion sampler through
`KScheduler` (`kscheduler.py`), as A1111 runs it. "Automatic" keeps what the sampler's registry
entry and the model's own scheduler config say. Old names that carry the schedule
("DPM++ 2M Karras") stay samplers of their own and, as in A1111, their schedule wins.
A1111's timestep samplers (UniPC, LCM here) ignore a schedule they have no option for, as A1111 does.

Every scheduler follows the model's noise schedule: one trained with zero terminal SNR
(`rescale_betas_zero_snr`) gets that schedule even from schedulers that have no such option
(as the equivalent `trained_betas`); samplers whose diffusers version loses the prompt there
(measured) run as k-diffusion samplers instead.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2AncestralDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LCMScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    TCDScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import is_torchsde_available

from studio.errors import UnknownSamplerError
from studio.generation.eta import DEFAULT_ETA, K_SAMPLER_ETA
from studio.generation.kscheduler import KScheduler
from studio.generation.schedules import SCHEDULES


class SamplerUnavailableError(ValueError):
    """The sampler (or sampler + schedule type) cannot run with this model; the message says why."""


@dataclass(frozen=True)
class ScheduleType:
    """A1111's "Schedule type": `name` is the API's lower-case name, `kwargs` the diffusers options."""

    name: str
    kwargs: Mapping[str, Any] | None = field(default_factory=lambda: MappingProxyType({}))  # None: no diffusers option


AUTOMATIC = "Automatic"
_DIFFUSERS_OPTIONS: dict[str, Mapping[str, Any]] = {
    AUTOMATIC: MappingProxyType({}),
    "Uniform": MappingProxyType({"timestep_spacing": "linspace"}),
    "Karras": MappingProxyType({"use_karras_sigmas": True}),
    "Exponential": MappingProxyType({"use_exponential_sigmas": True}),
    "SGM Uniform": MappingProxyType({"timestep_spacing": "trailing"}),
    "Beta": MappingProxyType({"use_beta_sigmas": True}),
}
# A1111 1.10's labels in its order (the UI and infotext show these; the API accepts label or name).
SCHEDULE_TYPES: dict[str, ScheduleType] = {
    label: ScheduleType(schedule.name, _DIFFUSERS_OPTIONS.get(label)) for label, schedule in SCHEDULES.items()
}
_SIGMA_FLAGS = {"use_karras_sigmas": "Karras", "use_exponential_sigmas": "Exponential", "use_beta_sigmas": "Beta"}


@dataclass(frozen=True)
class SamplerSpec:
    scheduler: type[SchedulerMixin]
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    aliases: tuple[str, ...] = ()
    # Why this sampler cannot run with a model's scheduler config and a schedule type
    # (None: it can). Optional: the built-in check (zero terminal SNR at all) applies to every spec.
    refuse: Callable[[Mapping[str, Any], str], str | None] | None = None
    # The k-diffusion sampler (kscheduler.K_SAMPLERS) that runs every pair diffusers cannot; None: none.
    k_sampler: str | None = None

    @property
    def implied_schedule(self) -> str | None:
        """The schedule type the name carries ("DPM++ 2M Karras" -> "Karras"), if any."""
        return next((label for flag, label in _SIGMA_FLAGS.items() if self.kwargs.get(flag)), None)

    def schedule_types(self) -> list[str]:
        """The schedule types this sampler takes (always "Automatic" first)."""
        if self.implied_schedule is not None:
            return [AUTOMATIC, self.implied_schedule]
        if self.k_sampler is not None:
            return list(SCHEDULE_TYPES)
        return [label for label in SCHEDULE_TYPES if self.diffusers_takes(label)]

    def diffusers_takes(self, schedule: str) -> bool:
        """The diffusers scheduler has this schedule type as an option."""
        options = SCHEDULE_TYPES[schedule].kwargs
        return self.scheduler is not KScheduler and options is not None and set(options) <= _init_parameters(self.scheduler)

    def unsupported_reason(self, config: Mapping[str, Any], schedule: str = AUTOMATIC) -> str | None:
        """Why this sampler cannot follow the model's noise schedule, or None when it can."""
        if self.k_sampler is not None:
            return None  # KScheduler follows any model's sigmas
        return self.diffusers_reason(config, schedule)

    def diffusers_reason(self, config: Mapping[str, Any], schedule: str = AUTOMATIC) -> str | None:
        """Why the diffusers scheduler cannot run this pair, or None when it can."""
        if self.scheduler is KScheduler:
            return "a k-diffusion sampler"
        if self.refuse is not None and (reason := self.refuse(config, schedule)):
            return reason
        accepted = _init_parameters(self.scheduler)
        if config.get("rescale_betas_zero_snr") and not {"rescale_betas_zero_snr", "trained_betas"} & accepted:
            return f"{self.scheduler.__name__} cannot follow this model's zero-terminal-SNR noise schedule"
        return None


_ZERO_SNR = ("this model's zero-terminal-SNR schedule starts at sigma 4096, where this sampler's "
             "{what} lose the prompt (wrong colours); use Euler, Euler a, DPM++ 2M, DPM++ SDE, UniPC or DDIM")


def _refused_on_zero_snr(config: Mapping[str, Any], schedule: str) -> str | None:
    """Measured on the default model (colour of 12 held-out prompts, 20 steps): below 90 %."""
    return _ZERO_SNR.format(what="steps") if config.get("rescale_betas_zero_snr") else None


def _sigma_schedules_refused_on_zero_snr(config: Mapping[str, Any], schedule: str) -> str | None:
    """Karras-like sigma schedules from sigma 4096 leave too few steps for this sampler."""
    if config.get("rescale_betas_zero_snr") and schedule in ("Karras", "Exponential", "Beta"):
        return _ZERO_SNR.format(what=f"steps on the {schedule} schedule")
    return None


@functools.cache
def _init_parameters(scheduler: type[SchedulerMixin]) -> frozenset[str]:
    return frozenset(inspect.signature(scheduler.__init__).parameters)


_KARRAS = MappingProxyType({"use_karras_sigmas": True})
_SDE = MappingProxyType({"algorithm_type": "sde-dpmsolver++"})
_SDE_KARRAS = MappingProxyType({"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True})
_3M_SDE = MappingProxyType({"algorithm_type": "sde-dpmsolver++", "solver_order": 3})
_ALWAYS = _refused_on_zero_snr
_SIGMAS = _sigma_schedules_refused_on_zero_snr

# The registry. Extensions add entries through studio.api; core names cannot be replaced.
# ("DPM++ 3M SDE Karras" is the example extension's: here it is DPM++ 3M SDE + Karras schedule.)
SAMPLERS: dict[str, SamplerSpec] = {
    "Euler": SamplerSpec(EulerDiscreteScheduler, aliases=("k_euler",), k_sampler="euler"),
    "Euler a": SamplerSpec(EulerAncestralDiscreteScheduler, aliases=("k_euler_a", "k_euler_ancestral"),
                          k_sampler="euler_ancestral"),
    "DPM++ 2M Karras": SamplerSpec(DPMSolverMultistepScheduler, _KARRAS, ("k_dpmpp_2m_ka",), k_sampler="dpmpp_2m"),
    "DDIM": SamplerSpec(DDIMScheduler, aliases=("ddim",), k_sampler="ddim"),
    "UniPC": SamplerSpec(UniPCMultistepScheduler, aliases=("unipc",)),
    "DPM++ 2M": SamplerSpec(DPMSolverMultistepScheduler, aliases=("k_dpmpp_2m",), k_sampler="dpmpp_2m"),
    "DPM++ 2M SDE": SamplerSpec(DPMSolverMultistepScheduler, _SDE, ("k_dpmpp_2m_sde",), _SIGMAS, "dpmpp_2m_sde"),
    "DPM++ 2M SDE Karras": SamplerSpec(DPMSolverMultistepScheduler, _SDE_KARRAS, ("k_dpmpp_2m_sde_ka",), _ALWAYS,
                                       "dpmpp_2m_sde"),
    "DPM++ 3M SDE": SamplerSpec(DPMSolverMultistepScheduler, _3M_SDE, ("k_dpmpp_3m_sde",), _SIGMAS, "dpmpp_3m_sde"),
    "Heun": SamplerSpec(HeunDiscreteScheduler, aliases=("k_heun",), refuse=_ALWAYS, k_sampler="heun"),
    "LMS": SamplerSpec(LMSDiscreteScheduler, aliases=("k_lms",), refuse=_ALWAYS, k_sampler="lms"),
    "LMS Karras": SamplerSpec(LMSDiscreteScheduler, _KARRAS, ("k_lms_ka",), _ALWAYS, "lms"),
    "DPM2": SamplerSpec(KDPM2DiscreteScheduler, aliases=("k_dpm_2",), refuse=_SIGMAS, k_sampler="dpm_2"),
    "DPM2 Karras": SamplerSpec(KDPM2DiscreteScheduler, _KARRAS, ("k_dpm_2_ka",), _ALWAYS, "dpm_2"),
    "DPM2 a": SamplerSpec(KDPM2AncestralDiscreteScheduler, aliases=("k_dpm_2_a",), refuse=_ALWAYS,
                          k_sampler="dpm_2_ancestral"),
    "DPM2 a Karras": SamplerSpec(KDPM2AncestralDiscreteScheduler, _KARRAS, ("k_dpm_2_a_ka",), _ALWAYS,
                                 "dpm_2_ancestral"),
    "PLMS": SamplerSpec(PNDMScheduler, MappingProxyType({"skip_prk_steps": True}), ("plms",), _ALWAYS, "plms"),
    # original_inference_steps: LCM's grid over the whole training schedule, so any step count runs.
    "LCM": SamplerSpec(LCMScheduler, MappingProxyType({"original_inference_steps": 1000}), ("lcm",)),
    # TCD (Zheng et al.): the same grid as LCM; its stochasticity is the pipeline's eta (0 here).
    "TCD": SamplerSpec(TCDScheduler, MappingProxyType({"original_inference_steps": 1000}), ("tcd",)),
}
if is_torchsde_available():  # DPM++ SDE draws its noise from torchsde's Brownian tree
    import warnings

    from diffusers import DPMSolverSDEScheduler

    # torchsde warns on every float-rounding step outside the tree's interval (harmless).
    warnings.filterwarnings("ignore", message="Should have (ta|tb)", module="torchsde")
    SAMPLERS["DPM++ SDE"] = SamplerSpec(DPMSolverSDEScheduler, aliases=("k_dpmpp_sde",), k_sampler="dpmpp_sde")
    SAMPLERS["DPM++ SDE Karras"] = SamplerSpec(DPMSolverSDEScheduler, _KARRAS, ("k_dpmpp_sde_ka",),
                                               k_sampler="dpmpp_sde")


def _k_only(sampler: str, *aliases: str) -> SamplerSpec:
    """A sampler diffusers has no scheduler for: always the k-diffusion one."""
    return SamplerSpec(KScheduler, MappingProxyType({"sampler": sampler}), aliases, k_sampler=sampler)


# A1111 1.10's samplers that only run as k-diffusion samplers.
SAMPLERS.update({
    "DPM++ 2S a": _k_only("dpmpp_2s_ancestral", "k_dpmpp_2s_a"),
    "DPM++ 2M SDE Heun": _k_only("dpmpp_2m_sde_heun", "k_dpmpp_2m_sde_heun"),
    "DPM fast": _k_only("dpm_fast", "k_dpm_fast"),
    "DPM adaptive": _k_only("dpm_adaptive", "k_dpm_ad"),
    "Restart": _k_only("restart", "restart"),
    "DDIM CFG++": _k_only("ddim_cfgpp", "ddim_cfgpp"),
})
if "DPM++ SDE" not in SAMPLERS:  # without torchsde: the k-diffusion one (Gaussian noise instead of the tree)
    SAMPLERS["DPM++ SDE"] = _k_only("dpmpp_sde", "k_dpmpp_sde")
CORE_SAMPLERS = frozenset(SAMPLERS)


def sampler_names(registry: Mapping[str, SamplerSpec] = SAMPLERS) -> list[str]:
    return list(registry)


def available_samplers(
    config: Mapping[str, Any], registry: Mapping[str, SamplerSpec] = SAMPLERS
) -> dict[str, str | None]:
    """Every sampler name with the reason it cannot run with this model's scheduler config
    (None: it can). Listings (UI dropdown, /sdapi/v1/samplers) mark or hide the refused ones."""
    return {name: spec.unsupported_reason(config) for name, spec in registry.items()}


def available_schedule_types(name: str, config: Mapping[str, Any],
                             registry: Mapping[str, SamplerSpec] = SAMPLERS) -> list[str]:
    """The schedule types a sampler takes on this model."""
    spec = registry[resolve_sampler_name(name, registry)]
    return [label for label in spec.schedule_types() if not spec.unsupported_reason(config, label)]


def resolve_sampler_name(name: str, registry: Mapping[str, SamplerSpec] = SAMPLERS) -> str:
    """Accept a registry name or one of its aliases (A1111 API clients send either)."""
    if name in registry:
        return name
    for key, spec in registry.items():
        if name in spec.aliases or name.lower() == key.lower():
            return key
    raise UnknownSamplerError(
        f"unknown sampler {name!r}; choose one of: {', '.join(registry)}"
    )


def resolve_schedule_type(name: str) -> str:
    """A1111's label ("Karras") or API name ("karras"); ValueError naming the choices."""
    for label, schedule in SCHEDULE_TYPES.items():
        if name in (label, schedule.name, *SCHEDULES[label].aliases) or name.lower() == label.lower():
            return label
    raise ValueError(f"unknown schedule type {name!r}; choose one of: {', '.join(SCHEDULE_TYPES)}")


def schedule_kwargs(name: str, schedule: str, registry: Mapping[str, SamplerSpec] = SAMPLERS) -> dict[str, Any]:
    """The diffusers options a schedule type adds to a sampler's diffusers scheduler ({} when the
    sampler's own schedule wins or the scheduler ignores it); SamplerUnavailableError if diffusers
    has no such option (the pair then runs as a k-diffusion sampler, when the sampler has one)."""
    sampler = resolve_sampler_name(name, registry)
    spec, label = registry[sampler], resolve_schedule_type(schedule)
    if spec.implied_schedule is not None:  # A1111: the schedule in the name ("DPM++ 2M Karras") wins
        return {flag: False for flag in _SIGMA_FLAGS if flag in _init_parameters(spec.scheduler)} | dict(spec.kwargs)
    if label == AUTOMATIC:
        return {}
    if not spec.diffusers_takes(label):
        if spec.k_sampler is None and spec.scheduler is not KScheduler:
            return {}  # a timestep sampler (UniPC, LCM): A1111 ignores the schedule type
        raise SamplerUnavailableError(
            f"sampler {sampler!r} cannot use schedule type {label!r}; it takes: {', '.join(spec.schedule_types())}"
        )
    kwargs = {flag: False for flag in _SIGMA_FLAGS if flag in _init_parameters(spec.scheduler)}
    return {**kwargs, **(SCHEDULE_TYPES[label].kwargs or {})}


def make_scheduler(
    name: str,
    config: Mapping[str, Any],
    registry: Mapping[str, SamplerSpec] = SAMPLERS,
    schedule: str = AUTOMATIC,
    sdxl: bool = False,
    eta: float | None = None,
) -> SchedulerMixin:
    """A fresh scheduler for one run, built from the model's own scheduler config: the diffusers one
    where it runs the pair, else the k-diffusion sampler (`sdxl` picks Align Your Steps' table).

    SamplerUnavailableError when neither can follow the model's schedule or take the schedule type.
    An `eta` other than the sampler's default runs its k-diffusion sampler: diffusers' ancestral
    schedulers have none, and DDIM's lives in the pipeline call (one path for every pass here).
    """
    spec = registry[resolve_sampler_name(name, registry)]
    label = resolve_schedule_type(schedule)
    kind = K_SAMPLER_ETA.get(spec.k_sampler or "")
    k_eta = DEFAULT_ETA[kind] if kind else 1.0
    if kind and eta is not None and float(eta) != k_eta:
        return KScheduler.from_config(dict(config), sampler=spec.k_sampler, schedule=spec.implied_schedule or label,
                                      sdxl=sdxl, eta=float(eta))
    try:
        extra = schedule_kwargs(name, label, registry)
        reason = spec.diffusers_reason(config, label)
    except SamplerUnavailableError as error:
        extra, reason = {}, str(error)
    if reason is None:
        kwargs = {**_follow_zero_snr(spec.scheduler, config), **spec.kwargs, **extra}
        return _starting_at_first_step(spec.scheduler).from_config(dict(config), **kwargs)
    if spec.k_sampler is None:
        raise SamplerUnavailableError(f"sampler {name!r} is not available for this model: {reason}")
    k_schedule = spec.implied_schedule or label
    return KScheduler.from_config(dict(config), sampler=spec.k_sampler, schedule=k_schedule, sdxl=sdxl, eta=k_eta)


def _follow_zero_snr(scheduler: type[SchedulerMixin], config: Mapping[str, Any]) -> dict[str, Any]:
    """A zero-terminal-SNR schedule as `trained_betas` for schedulers without the option."""
    accepted = _init_parameters(scheduler)
    if not config.get("rescale_betas_zero_snr") or "rescale_betas_zero_snr" in accepted:
        return {}
    return {"trained_betas": zero_snr_betas(config)}


def zero_snr_betas(config: Mapping[str, Any]) -> list[float]:
    """The betas of the model's schedule rescaled to zero terminal SNR, with the last cumulative
    alpha set to 2**-24 (as diffusers' Euler and DPM-Solver do, so the first sigma is finite)."""
    reference = EulerDiscreteScheduler.from_config(dict(config), rescale_betas_zero_snr=True)
    alphas_cumprod = reference.alphas_cumprod.to(torch.float64)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    return (1.0 - alphas_cumprod / previous).tolist()


@functools.cache
def _starting_at_first_step(scheduler: type[SchedulerMixin]) -> type[SchedulerMixin]:
    """The scheduler class, starting every run at its first step.

    diffusers finds the first step by looking its timestep up in the schedule and, when it occurs
    twice (img2img's convention), takes the second. Karras/exponential sigmas over a long schedule
    (zero terminal SNR: sigma_max = 4096) round several leading sigmas to timestep 999, so
    txt2img skipped a step and ran past the end ("index 31 is out of bounds" at 30 steps).
    img2img/inpaint pipelines still set their own begin index after `set_timesteps`.
    """
    if "set_begin_index" not in dir(scheduler):
        return scheduler

    def set_timesteps(self: Any, *args: Any, **kwargs: Any) -> None:
        scheduler.set_timesteps(self, *args, **kwargs)
        self.set_begin_index(0)

    return type(scheduler.__name__, (scheduler,), {"set_timesteps": set_timesteps, "__module__": scheduler.__module__})
