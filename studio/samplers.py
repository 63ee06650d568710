"""The sampler registry: A1111's sampler names mapped to diffusers schedulers.

Each request gets a fresh scheduler built from the loaded model's scheduler config,
because diffusers schedulers keep per-run state (step index, model outputs).
The mapping follows the table in diffusers' scheduler overview; only faithful ones are listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2AncestralDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin


class UnknownSamplerError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class SamplerSpec:
    scheduler: type[SchedulerMixin]
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    aliases: tuple[str, ...] = ()


_KARRAS = MappingProxyType({"use_karras_sigmas": True})
_SDE = MappingProxyType({"algorithm_type": "sde-dpmsolver++"})
_SDE_KARRAS = MappingProxyType({"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True})

# The registry. Extensions add entries through studio.api; core names cannot be replaced.
SAMPLERS: dict[str, SamplerSpec] = {
    "Euler": SamplerSpec(EulerDiscreteScheduler, aliases=("k_euler",)),
    "Euler a": SamplerSpec(EulerAncestralDiscreteScheduler, aliases=("k_euler_a",)),
    "DPM++ 2M Karras": SamplerSpec(DPMSolverMultistepScheduler, _KARRAS, ("k_dpmpp_2m_ka",)),
    "DDIM": SamplerSpec(DDIMScheduler, aliases=("ddim",)),
    "UniPC": SamplerSpec(UniPCMultistepScheduler, aliases=("unipc",)),
    "DPM++ 2M": SamplerSpec(DPMSolverMultistepScheduler, aliases=("k_dpmpp_2m",)),
    "DPM++ 2M SDE": SamplerSpec(DPMSolverMultistepScheduler, _SDE, ("k_dpmpp_2m_sde",)),
    "DPM++ 2M SDE Karras": SamplerSpec(
        DPMSolverMultistepScheduler, _SDE_KARRAS, ("k_dpmpp_2m_sde_ka",)
    ),
    "Heun": SamplerSpec(HeunDiscreteScheduler, aliases=("k_heun",)),
    "LMS": SamplerSpec(LMSDiscreteScheduler, aliases=("k_lms",)),
    "LMS Karras": SamplerSpec(LMSDiscreteScheduler, _KARRAS, ("k_lms_ka",)),
    "DPM2": SamplerSpec(KDPM2DiscreteScheduler, aliases=("k_dpm_2",)),
    "DPM2 Karras": SamplerSpec(KDPM2DiscreteScheduler, _KARRAS, ("k_dpm_2_ka",)),
    "DPM2 a": SamplerSpec(KDPM2AncestralDiscreteScheduler, aliases=("k_dpm_2_a",)),
    "DPM2 a Karras": SamplerSpec(KDPM2AncestralDiscreteScheduler, _KARRAS, ("k_dpm_2_a_ka",)),
    "PLMS": SamplerSpec(PNDMScheduler, MappingProxyType({"skip_prk_steps": True}), ("plms",)),
}
CORE_SAMPLERS = frozenset(SAMPLERS)


def sampler_names(registry: Mapping[str, SamplerSpec] = SAMPLERS) -> list[str]:
    return list(registry)


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


def make_scheduler(
    name: str, config: Mapping[str, Any], registry: Mapping[str, SamplerSpec] = SAMPLERS
) -> SchedulerMixin:
    """A fresh scheduler for one run, built from the model's own scheduler config."""
    spec = registry[resolve_sampler_name(name, registry)]
    return spec.scheduler.from_config(dict(config), **dict(spec.kwargs))
