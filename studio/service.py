"""The Studio: models, engine and extensions wired together, and the one place every job enters.

It implements `studio.facade.StudioFacade` for the web layer and builds the UI context for the
Gradio tabs; `studio.server` launches it."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from PIL import Image

from studio import jobs, storage
from studio.api import ExtensionContext
from studio.extras import ExtrasRequest, face_restoration_unavailable
from studio.history import HistoryIndex
from studio.upscalers import image_upscaler_names
from studio.control import pose
from studio.control.models import ControlNetEntry, discover_controlnets
from studio.control.preprocessors import PREPROCESSORS, PreprocessorSpec
from studio.control.units import control_image
from studio.engine import Engine, Progress
from studio.errors import ModelError, StudioError
from studio.extensions import ExtensionManager, save_output, settings_view
from studio.facade import LoadedInfo, Reproduction
from studio.models import DEFAULT_MODEL_TITLE, ModelEntry, ModelManager, find_model
from studio.pnginfo import read_generation_info
from studio.previews import latent_preview
from studio.reproduce import NoRecipeError, read_recipe, recipe_warnings
from studio.request import MAX_SEED, ControlUnit, GenerationRequest
from studio.settings import Settings

if TYPE_CHECKING:
    from studio.ui.context import UiContext


@dataclass
class Studio:
    settings: Settings
    models: ModelManager
    engine: Engine
    extensions: ExtensionManager
    history: HistoryIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.history = HistoryIndex(self.settings.outputs_dir)

    @classmethod
    def create(cls, settings: Settings) -> "Studio":
        models = ModelManager(settings)
        extensions = ExtensionManager(settings).load_all()  # with --safe-mode: listed, none loaded
        engine = Engine(models, extensions.samplers, merged_preprocessors(extensions))
        return cls(settings, models, engine, extensions)

    def submit(
        self, request: GenerationRequest, on_step: Callable[[Progress], None] | None = None, save: bool = True,
        directory: Path | None = None,
    ) -> jobs.JobResult:
        """The one entry for every generation (UI, API, scripts): validate, extension hooks, run, save."""
        request = request.validate()
        if request.seed == -1:  # drawn here so that before_generate hooks see the image's seed
            request = request.replace(seed=random.randint(0, MAX_SEED))
        notices: list[str] = []
        request, params = self.extensions.before_generate(request, notices)
        after = partial(self.extensions.after_image, notices=notices) if self.extensions.after_hooks else None
        result = jobs.generate(request, self.engine, self.settings, on_step, save=save, after_image=after, params=params,
                               directory=directory)
        return dataclasses.replace(result, notices=tuple(notices))

    def extension_context(
        self, progress: Callable[[float, str], None] = lambda f, d: None, notify: Callable[[str], None] = lambda t: None
    ) -> ExtensionContext:
        """The narrow context extension tabs and scripts get; hook notices go to `notify`."""
        def submit(request: GenerationRequest) -> jobs.JobResult:
            job = self.submit(request)
            for notice in job.notices:
                notify(notice)
            return job

        return ExtensionContext(
            submit=submit, settings=settings_view(self.settings), samplers=MappingProxyType(self.engine.samplers),
            model_titles=self.models.titles, current_model=lambda: self.models.current().entry.title,
            load_model=self.load_model, save_image=partial(save_output, self.settings.outputs_dir), progress=progress,
        )

    def load_model(self, title: str) -> str:
        return self.engine.load_model(title).entry.title

    @property
    def annotators_dir(self) -> Path:
        return self.settings.models_dir / "annotators"

    def preview_control(self, unit: ControlUnit, source: Any, width: int, height: int) -> Any:
        """The control image the engine would use for this unit (same function, same arguments)."""
        return control_image(unit, source, width, height, self.annotators_dir, self.engine.preprocessors)

    def controlnet_models(self) -> list[tuple[str, str]]:
        entries = discover_controlnets(self.settings, self.models.current().folder)
        return [(entry.title, entry.control_type) for entry in entries]

    def control_preprocessors(self) -> dict[str, tuple[Any, str | None]]:
        return {name: (spec, spec.unavailable_reason(self.annotators_dir))
                for name, spec in self.engine.preprocessors.items()}

    def settings_summary(self) -> dict[str, Any]:
        s = self.settings
        return {"models_dir": str(s.models_dir), "outputs_dir": str(s.outputs_dir),
                "extensions_dir": str(s.extensions_dir), "device": s.device, "dtype": s.dtype,
                "allow_pickle": s.allow_pickle, "safe_mode": s.safe_mode, "host": s.host, "port": s.port,
                "share": s.share, "auth": "set" if s.auth else "off"}

    def ui_context(self) -> "UiContext":
        from studio.ui.context import UiContext  # the UI layer is imported only when a UI is built

        return UiContext(
            submit=self.submit,
            interrupt=self.engine.interrupt,
            sampler_names=lambda: list(self.engine.samplers),
            model_titles=self.models.titles,
            current_model=lambda: self.models.current().entry.title,
            load_model=self.load_model,
            native_size=lambda: self.models.current().native_size,
            read_png=read_generation_info,
            settings_summary=self.settings_summary,
            error_types=(ValueError, StudioError),
            extension_rows=self.extensions.rows,
            extension_refusal=self.extensions.change_refusal,
            set_extension_enabled=self.extensions.set_enabled,
            extension_tabs=lambda: self.extensions.guarded_tabs(self.extension_context()),
            scripts=lambda: self.extensions.guarded_scripts(self.extension_context),
            safe_mode=self.settings.safe_mode,
            preview_control=self.preview_control,
            controlnet_models=self.controlnet_models,
            control_preprocessors=self.control_preprocessors,
            pose_tools=lambda: pose,
            reproduce_warnings=self.reproduce_warnings,
            reproduce=self.reproduce,
            upscaler_names=self.engine.upscalers.names,
            image_upscaler_names=self.image_upscaler_names,
            run_extras=lambda images, values: self.run_extras(images, values),
            face_restoration_unavailable=face_restoration_unavailable,
            history_page=lambda page, per_page, query: self.history.page(page, per_page, query),
            delete_output=self.history.delete,
        )

    def run_extras(self, images: list[Any], values: Mapping[str, Any], save: bool = True) -> tuple[list[Any], str]:
        """Upscale images with the Extras fields (A1111 names); saved to outputs/extras-images when `save`.
        Returns (saved paths, or the images when not saved; the info text)."""
        request = ExtrasRequest.from_dict(values)
        results = self.engine.run_extras([image for image in images], request)
        info = request.info()
        if not save:
            return results, info
        directory = storage.output_dir(self.settings.outputs_dir, "extras")
        return [storage.save_png(image, directory, 0, info) for image in results], info

    def upscalers(self) -> Mapping[str, Any]:
        return self.engine.upscalers.entries()

    def image_upscaler_names(self) -> list[str]:
        return image_upscaler_names(self.engine.upscalers.entries())

    def reproduce_warnings(self, path: Path) -> list[str]:
        """Why a reproduction of this PNG may differ here (model hash, library versions, threads)."""
        try:
            return recipe_warnings(read_recipe(path), self.models)
        except NoRecipeError as error:
            return [str(error)]

    def reproduce(self, path: Path) -> tuple[str | None, str, list[str]]:
        """Regenerate the PNG's image from its recipe and save it; returns (path, infotext, warnings)."""
        result = self.reproduce_image(path, save=True)
        saved = result.image
        return (str(saved.path) if saved.path else None), saved.infotext, result.warnings

    def reproduce_image(self, source: Path | Image.Image, save: bool = False) -> Reproduction:
        """Regenerate the image from its recipe. The recipe's request already went through the
        before_generate hooks when it was made, so they are not run again (a hook that appends to the
        prompt would append twice); after_image hooks are, since they changed the saved pixels."""
        recipe = read_recipe(source)
        self._refuse_unknown_model(recipe.request.model)
        warnings = recipe_warnings(recipe, self.models)
        notices: list[str] = []
        after = partial(self.extensions.after_image, notices=notices) if self.extensions.after_hooks else None
        job = jobs.generate(recipe.request, self.engine, self.settings, save=save, after_image=after)
        if job.interrupted or recipe.position >= len(job.images):
            raise StudioError("the reproduction was interrupted")
        return Reproduction(job.images[recipe.position], job.request, warnings + notices)

    def _refuse_unknown_model(self, title: str | None) -> None:
        """A PNG names its model; only a model discovered here may run (never a path or a Hub id)."""
        if title is not None and title not in self.models.titles():
            raise ModelError(f"this PNG was made with model {title[:200]!r}, which is not among the models here "
                             "(models/Stable-diffusion); place it there to reproduce the image")

    # The rest of studio.facade.StudioFacade: what the web layer may ask.

    def samplers(self) -> Mapping[str, Any]:
        return MappingProxyType(self.engine.samplers)

    def model_entries(self) -> list[ModelEntry]:
        return self.models.entries()

    def loaded_info(self) -> LoadedInfo | None:
        loaded = self.models.loaded
        if loaded is None:
            return None
        return LoadedInfo(loaded.entry, loaded.hash, int(loaded.pipe.vae_scale_factor))

    def controlnet_entries(self, model_title: str | None) -> list[ControlNetEntry]:
        """The ControlNets for the model a request runs on: shipped beside it, then models/ControlNet.
        Nothing is loaded here (a listing must not load a model outside the engine's lock)."""
        loaded = self.models.loaded
        if model_title is None and loaded is not None:
            entry = loaded.entry
        else:
            entry = find_model(model_title or self.settings.model or DEFAULT_MODEL_TITLE, self.settings)
        folder = entry.path if entry.kind in ("default", "diffusers") else None  # as LoadedModel.folder
        return discover_controlnets(self.settings, folder)

    def preprocessors(self) -> Mapping[str, PreprocessorSpec]:
        return MappingProxyType(self.engine.preprocessors)

    def busy(self) -> bool:
        return self.engine.busy

    def progress(self) -> Progress:
        return self.engine.progress

    def interrupt(self) -> None:
        self.engine.interrupt()

    def preview(self, method: str) -> Image.Image | None:
        """The running job's latest latents as an image ("approx" or "vae"); None when idle."""
        latents, loaded = self.engine.progress.latents, self.models.loaded
        if not self.engine.busy or latents is None or loaded is None:
            return None
        vae = loaded.pipe.vae if method == "vae" else None
        return latent_preview(latents, int(loaded.pipe.vae_scale_factor), vae)


def merged_preprocessors(extensions: ExtensionManager) -> dict[str, PreprocessorSpec]:
    """Core preprocessors plus the extensions' (run guarded and attributed, with their own
    default parameters; they feed any control type)."""
    merged = dict(PREPROCESSORS)
    for name, spec in extensions.preprocessors.items():
        def run(image: Any, a: float, b: float, name: str = name, params: dict = dict(spec.params)) -> Any:
            return extensions.run_preprocessor(name, image, **params)

        merged[name] = PreprocessorSpec(run, "any")
    return merged
