"""ControlNet units of a run: their control images (preprocessed at the generation size), their
ControlNets loaded once beside the base, and the pipeline arguments that carry them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.checkpoints.manager import LoadedModel
from studio.control.catalog import controlnet_mismatch, discover_controlnets
from studio.control.loading import load_controlnet
from studio.control.preprocessors import PreprocessorSpec
from studio.control.units import control_image
from studio.errors import ModelError
from studio.generation.modes import ModeInputs
from studio.generation.results import Controls
from studio.request import ControlUnit, GenerationRequest, RequestError
from studio.settings import Settings


def prepare_controls(settings: Settings, model: LoadedModel, request: GenerationRequest, inputs: ModeInputs,
                     preprocessors: dict[str, PreprocessorSpec]) -> Controls:
    units = tuple(unit for unit in request.controlnet_units if unit.enabled)
    if not units:
        return Controls()
    annotators = settings.models_dir / "annotators"
    try:
        images = tuple(control_image(u, inputs.source, inputs.width, inputs.height, annotators, preprocessors)
                       for u in units)
    except ValueError as error:
        raise RequestError(f"ControlNet: {error}") from error
    return Controls(units, tuple(controlnet_for(settings, model, unit) for unit in units), images)


def controlnet_for(settings: Settings, model: LoadedModel, unit: ControlUnit) -> str:
    """The title of the unit's ControlNet, loading it once (only it: the base stays as it is)."""
    entries = discover_controlnets(settings, model.folder)
    if unit.model:
        matches = [e for e in entries if unit.model in (e.title, Path(e.title).stem)]
    else:
        matches = [e for e in entries if e.control_type == unit.control_type]
    if not matches:
        wanted = unit.model or f"a {unit.control_type} ControlNet"
        raise ModelError(f"{wanted} not found for {model.entry.title} (looked beside it and in models/ControlNet)")
    entry = matches[0]
    mismatch = controlnet_mismatch(entry, model.pipe.unet.config)
    if mismatch:
        raise RequestError(f"ControlNet {entry.title} does not fit {model.entry.title}: {mismatch}")
    if entry.title not in model.controlnets:
        model.controlnets[entry.title] = load_controlnet(entry, model.pipe.unet.dtype, model.pipe.device)
    return entry.title


def control_kwargs(mode: str, controls: Controls) -> dict[str, Any]:
    """The control images and their weights and guidance windows, as diffusers' ControlNet pipelines take them."""
    if not controls.units:
        return {}
    units, images = controls.units, controls.images
    single = len(units) == 1
    key = "image" if mode == "txt2img" else "control_image"
    return {
        key: images[0] if single else list(images),
        "controlnet_conditioning_scale": units[0].weight if single else [u.weight for u in units],
        "control_guidance_start": [u.guidance_start for u in units],
        "control_guidance_end": [u.guidance_end for u in units],
    }
