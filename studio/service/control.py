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
from studio.control.catalog import (
    MODEL_FREE_TYPES,
    TYPE_NAMES,
    ControlNetEntry,
    controlnet_mismatch,
    discover_controlnets,
)
from studio.control.preprocessors import (
    DEFAULT_MODULE,
    PREPROCESSORS,
    PreprocessorSpec,
    annotator_dirs,
    run_preprocessor,
)
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

    @property
    def annotator_dirs(self) -> tuple[Path, ...]:
        """Where detector weights are looked for: models/ControlNet/annotators/, then models/annotators/."""
        return annotator_dirs(self.settings.models_dir)

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
        return {name: (spec, spec.unavailable_reason(self.annotator_dirs)) for name, spec in self.registry.items()}

    def preview(self, unit: ControlUnit, source: Any, width: int, height: int, mask: Any = None) -> Image.Image:
        """The control image the engine would use for this unit (same function, same arguments)."""
        return control_image(unit, source, width, height, self.annotator_dirs, self.registry, mask)

    def detect(self, module: str, image: Image.Image, resolution: int, threshold_a: float, threshold_b: float,
               mask: Image.Image | None = None) -> Image.Image:
        """/controlnet/detect: `module` run on `image` scaled so its shorter side is `resolution`
        (sd-webui-controlnet's processor_res); ValueError when it cannot run."""
        scale = resolution / min(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        if mask is not None:
            mask = mask.convert("L").resize(size)
        return run_preprocessor(module, image, threshold_a, threshold_b, self.annotator_dirs, self.registry, mask)

    def control_types(self) -> dict[str, dict[str, Any]]:
        """sd-webui-controlnet's /controlnet/control_types: per type its modules, models and defaults
        ("All" first; "none" leads every module list, "None" every model list)."""
        entries = self.entries()
        table = {"All": {"module_list": list(self.registry), "model_list": ["None", *(e.title for e in entries)],
                         "default_option": "none", "default_model": "None"}}
        for kind, name in TYPE_NAMES.items():
            modules = [m for m, spec in self.registry.items() if spec.control_type == kind]
            models = [e.title for e in entries if e.control_type == kind]
            default = DEFAULT_MODULE.get(kind) if DEFAULT_MODULE.get(kind) in modules else (modules or ["none"])[0]
            table[name] = {"module_list": ["none", *[m for m in modules if m != "none"]],
                           "model_list": ["None", *models], "default_option": default,
                           "default_model": models[0] if models and kind not in MODEL_FREE_TYPES else "None"}
        return table

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
