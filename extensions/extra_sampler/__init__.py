"""An extra sampler through the extension API: DPM++ 3M SDE Karras, as A1111 names it."""
from __future__ import annotations

from types import MappingProxyType

from studio.api import ExtensionApi, SamplerSpec

NAME = "DPM++ 3M SDE Karras"
OPTIONS = MappingProxyType({"solver_order": 3, "algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True})


def register(api: ExtensionApi) -> None:
    from diffusers import DPMSolverMultistepScheduler

    api.add_sampler(NAME, SamplerSpec(DPMSolverMultistepScheduler, OPTIONS, aliases=("k_dpmpp_3m_sde_ka",)))
