"""sd-webui-controlnet's listing routes (same paths and shapes, same auth as /sdapi/v1)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from studio.web.controlnet_units import module_detail

if TYPE_CHECKING:
    from studio.service.container import Services

CONTROLNET_API_VERSION = 2  # sd-webui-controlnet's external_code.get_api_version()


def routes(router: APIRouter, services: "Services") -> None:
    control = services.control

    @router.get("/controlnet/version", tags=["controlnet"])
    def controlnet_version() -> dict[str, Any]:
        return {"version": CONTROLNET_API_VERSION}

    @router.get("/controlnet/model_list", tags=["controlnet"])
    def controlnet_model_list(update: bool = True) -> dict[str, Any]:
        """The ControlNets for the loaded model (read afresh on every call; `update` is accepted).
        `model_detail` (ours) says which fit the loaded model and why not."""
        fits = control.fit()
        return {"model_list": [entry.title for entry in control.entries()],
                "model_detail": {title: {"fits": reason is None, "reason": reason} for title, reason in fits.items()}}

    @router.get("/controlnet/module_list", tags=["controlnet"])
    def controlnet_module_list(alias_names: bool = False) -> dict[str, Any]:
        """Preprocessor names (there are no aliases here, so `alias_names` changes nothing)."""
        annotators = control.annotators_dir
        modules = control.preprocessors()
        return {"module_list": list(modules),
                "module_detail": {name: module_detail(spec, annotators) for name, spec in modules.items()}}
