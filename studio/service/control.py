"""ControlNet for the edges: which ControlNets there are for the model a request runs on and whether
each fits it, the preprocessors (the core's and the extensions'), and the exact control image the
engine would use for a unit (the UI's preview)."""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from PIL import Image

from studio.checkpoints.catalog import DEFAULT_MODEL_TITLE, find_model
from studio.control import pose
from studio.control.catalog import ControlNetEntry, controlnet_mismatch, discover_controlnets
from studio.control.preprocessors import PREPROCESSORS, PreprocessorSpec
from studio.control.units import control_image
from studio.request import ControlUnit
from studio.service.extensions.manager import ExtensionManager
from studio.service.models import ModelService
from studio.settings import Settings


class ControlService:
    def __init__(self, settings: Settings, models: ModelService, preprocessors: dict[str, PreprocessorSpec]) -> None:
        self.settings = settings
        self.models = models
        self.registry = preprocessors

    @property
    def annotators_dir(self) -> Path:
        return self.settings.models_dir / "annotators"

    def entries(self, model_title: str | None = None) -> list[ControlNetEntry]:
        """The ControlNets for the model a request runs on (None: the loaded one): shipped beside it,
        then models/ControlNet. Nothing is loaded here."""
        facts = self.models.facts()
        if model_title is None and facts is not None:
            entry = facts.entry
        else:
            entry = find_model(model_title or self.settings.model or DEFAULT_MODEL_TITLE, self.settings)
        folder = entry.path if entry.kind in ("default", "diffusers") else None  # as LoadedModel.folder
        return discover_controlnets(self.settings, folder)

    def models_and_types(self) -> list[tuple[str, str]]:
        """(title, control type) of the loaded model's ControlNets."""
        return [(entry.title, entry.control_type) for entry in self.entries()]

    def fit(self) -> Mapping[str, str | None]:
        """Each ControlNet of the loaded model's list with why it does not fit it (None: it fits)."""
        facts = self.models.facts()
        if facts is None:
            return {}
        return {entry.title: controlnet_mismatch(entry, facts.unet_config) for entry in self.entries()}

    def preprocessors(self) -> Mapping[str, PreprocessorSpec]:
        return MappingProxyType(dict(self.registry))

    def preprocessor_choices(self) -> dict[str, tuple[PreprocessorSpec, str | None]]:
        """Every preprocessor with why it cannot run here (its detector's weights are missing), or None."""
        return {name: (spec, spec.unavailable_reason(self.annotators_dir)) for name, spec in self.registry.items()}

    def preview(self, unit: ControlUnit, source: Any, width: int, height: int) -> Image.Image:
        """The control image the engine would use for this unit (same function, same arguments)."""
        return control_image(unit, source, width, height, self.annotators_dir, self.registry)

    @staticmethod
    def pose_tools() -> Any:
        """The OpenPose body model: names, limbs, colours, presets, renderer, JSON (the pose editor's)."""
        return pose


def merged_preprocessors(extensions: ExtensionManager) -> dict[str, PreprocessorSpec]:
    """Core preprocessors plus the extensions' (run guarded and attributed, with their own
    default parameters; they feed any control type)."""
    merged = dict(PREPROCESSORS)
    for name, spec in extensions.preprocessors.items():
        def run(image: Any, a: float, b: float, name: str = name, params: dict = dict(spec.params)) -> Any:
            return extensions.run_preprocessor(name, image, **params)

        merged[name] = PreprocessorSpec(run, "any")
    return merged
