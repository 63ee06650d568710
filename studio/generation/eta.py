"""A1111's eta: the noise a stochastic sampler adds back each step. DDIM's comes from the `eta_ddim`
option (default 0, infotext "Eta DDIM"), the ancestral and SDE samplers' from `eta_ancestral`
(default 1, infotext "Eta"); a request's own `eta` wins over either. Pure tables (no torch): the
infotext and the options store read them too."""
from __future__ import annotations

# k-diffusion sampler (KScheduler's names) -> which eta it takes
K_SAMPLER_ETA = {"ddim": "ddim", **{name: "ancestral" for name in (
    "euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
    "dpmpp_2m_sde_heun", "dpmpp_3m_sde", "dpm_fast", "dpm_adaptive")}}
# A1111's sampler names -> which eta they take (a test keeps this equal to the registry's k_sampler)
SAMPLER_ETA = {"DDIM": "ddim", **{name: "ancestral" for name in (
    "Euler a", "DPM2 a", "DPM2 a Karras", "DPM++ 2S a", "DPM++ SDE", "DPM++ SDE Karras", "DPM++ 2M SDE",
    "DPM++ 2M SDE Karras", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "DPM fast", "DPM adaptive")}}
DEFAULT_ETA = {"ddim": 0.0, "ancestral": 1.0}
OPTION = {"ddim": "eta_ddim", "ancestral": "eta_ancestral"}
INFOTEXT_KEY = {"ddim": "Eta DDIM", "ancestral": "Eta"}


def eta_kind(sampler_name: str) -> str | None:
    """"ddim", "ancestral", or None for a sampler that adds no noise (eta changes nothing)."""
    return SAMPLER_ETA.get(sampler_name)


def infotext_eta(sampler_name: str, eta: float | None) -> tuple[str, float] | None:
    """(A1111's infotext key, value) when the run's eta differs from the sampler's default, else None."""
    kind = eta_kind(sampler_name)
    if kind is None or eta is None or float(eta) == DEFAULT_ETA[kind]:
        return None
    return INFOTEXT_KEY[kind], float(eta)
