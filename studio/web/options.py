"""Samplers, checkpoints and options: /sdapi/v1/samplers, sd-models, refresh-checkpoints, options."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from studio.checkpoints.catalog import ModelEntry
from studio.errors import StudioError
from studio.service.options import OptionsForbidden, OptionsService
from studio.web.callers import caller
from studio.web.checkpoints import current_title, resolve_checkpoint
from studio.web.schemas import SamplerItem, SDModelItem

if TYPE_CHECKING:
    from studio.service.container import Services

PREFIX = "/sdapi/v1"


def routes(router: APIRouter, services: "Services") -> None:
    models = services.models

    @router.get(f"{PREFIX}/samplers", response_model=list[SamplerItem])
    def samplers() -> list[dict[str, Any]]:
        """The registry; a sampler the loaded model cannot use carries options.unavailable (the reason)."""
        reasons = models.sampler_reasons()
        return [{"name": name, "aliases": list(spec.aliases),
                 "options": {**dict(spec.kwargs), **({"unavailable": reasons[name]} if reasons.get(name) else {})}}
                for name, spec in models.samplers().items()]

    @router.get(f"{PREFIX}/schedulers")
    def schedulers() -> list[dict[str, Any]]:
        """A1111's schedule types: `name` (API) and `label` (UI, infotext), either accepted; `default_rho`
        (-1: none) and `need_inner_model` (the schedule reads the model's own noise levels), as A1111."""
        return models.schedulers()

    @router.get(f"{PREFIX}/sd-models", response_model=list[SDModelItem])
    def sd_models() -> list[dict[str, Any]]:
        return [model_item(entry, services) for entry in models.entries()]

    @router.post(f"{PREFIX}/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        models.entries()  # discovery reads models/ afresh on every call

    @router.get(f"{PREFIX}/options")
    def get_options() -> dict[str, Any]:
        """A1111's options that mean something here (studio/service/option_keys.py), with the model."""
        loaded = services.models.facts()
        return {**options_store(services).values(), "sd_model_checkpoint": current_title(services),
                "sd_checkpoint_hash": getattr(loaded, "hash", None) if loaded is not None else None}

    @router.post(f"{PREFIX}/options")
    def set_options(options: dict[str, Any], http: Request) -> Any:
        """Every key is applied or the whole call is refused: 422 naming unknown or read-only keys and
        bad values; 403 for a server-wide key on a shared server (only the local operator sets those)."""
        store, current = options_store(services), get_options()
        try:
            store.check(options, current, operator=not store.shared)
        except OptionsForbidden as error:
            return JSONResponse(status_code=403, content={"detail": str(error)})
        if options.get("sd_model_checkpoint", current["sd_model_checkpoint"]) != current["sd_model_checkpoint"]:
            switch_model(services, options["sd_model_checkpoint"], caller(http).owner)
        store.update({k: v for k, v in options.items() if k != "sd_model_checkpoint"}, operator=not store.shared)
        return None


def options_store(services: "Services") -> OptionsService:
    if services.options is None:
        raise StudioError("this studio has no options store")
    return services.options


def model_item(entry: ModelEntry, services: "Services") -> dict[str, Any]:
    """A1111's shape; the hash is known for the loaded model (A1111 also hashes lazily)."""
    loaded = services.models.facts()
    short = loaded.hash if loaded is not None and loaded.entry == entry else None
    config = entry.path.with_suffix(".yaml") if entry.kind in ("single_file", "pickle") else None
    return {
        "title": f"{entry.title} [{short}]" if short else entry.title,
        "model_name": Path(entry.title).stem.replace("/", "_") if entry.kind != "hub" else entry.title.replace("/", "_"),
        "hash": short,
        "sha256": None,
        "filename": entry.location,
        "config": str(config) if config is not None and config.is_file() else None,
    }


def switch_model(services: "Services", title: Any, owner: str | None = None) -> None:
    """Load the model between generations; a failure raises and keeps the previous model."""
    entry = resolve_checkpoint(title, services)
    services.models.load(entry.title, owner=owner)  # a place and a turn in the queue: never during a generation


def flag_routes(router: APIRouter, services: "Services") -> None:
    @router.get(f"{PREFIX}/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        return command_flags(services.settings)


def command_flags(settings: Any) -> dict[str, Any]:
    """The settings under A1111's flag names where one exists; secrets only as set/unset."""
    return {
        "listen": settings.host == "0.0.0.0",
        "server_name": settings.host,
        "port": settings.port,
        "share": settings.share,
        "api": settings.api,
        "api_auth": "set" if settings.api_auth else None,
        "gradio_auth": "set" if settings.auth else None,
        "ckpt_dir": str(settings.models_dir / "Stable-diffusion"),
        "lora_dir": str(settings.models_dir / "Lora"),
        "embeddings_dir": str(settings.models_dir / "embeddings"),
        "hypernetwork_dir": str(settings.models_dir / "hypernetworks"),
        "vae_dir": str(settings.models_dir / "VAE"),
        "controlnet_dir": str(settings.models_dir / "ControlNet"),
        "esrgan_models_path": str(settings.models_dir / "ESRGAN"),
        "realesrgan_models_path": str(settings.models_dir / "RealESRGAN"),
        "swinir_models_path": str(settings.models_dir / "SwinIR"),
        "data_dir": str(settings.outputs_dir.parent),
        "models_dir": str(settings.models_dir),
        "outputs_dir": str(settings.outputs_dir),
        "extensions_dir": str(settings.extensions_dir),
        "ckpt": settings.model,
        "device": settings.device,
        "dtype": settings.dtype,
        "allow_pickle": settings.allow_pickle,
        "safe_mode": settings.safe_mode,
        "disable_extensions": settings.safe_mode,
    }
