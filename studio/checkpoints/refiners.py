"""The SDXL refiner model (A1111 >= 1.6's "Refiner"): a second model from models/Stable-diffusion,
loaded once and kept beside the resident base (no reload between runs), refused without loading
it when it declares a pipeline that is not SDXL. Its pass is studio/generation/passes/refiner.py."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffusers import DiffusionPipeline

from studio.checkpoints import single_file
from studio.checkpoints.catalog import ModelEntry, find_model, model_hash
from studio.checkpoints.loading import load_pipeline
from studio.checkpoints.manager import release_memory
from studio.errors import ModelError
from studio.request import RequestError
from studio.settings import Settings

if TYPE_CHECKING:  # diffusers' AutoPipeline module imports every pipeline family: only a refiner load needs it
    from diffusers import StableDiffusionXLImg2ImgPipeline

_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]$")


@dataclass
class LoadedRefiner:
    entry: ModelEntry
    pipe: StableDiffusionXLImg2ImgPipeline  # its scheduler config is what a run's scheduler is made from
    hash: str

    @property
    def title(self) -> str:
        return self.entry.title


def is_sdxl(pipe: DiffusionPipeline) -> bool:
    """An SDXL pipeline (base or refiner): a second text encoder and SDXL's time ids on the UNet."""
    return getattr(pipe, "text_encoder_2", None) is not None and \
        pipe.unet.config.get("addition_embed_type") == "text_time"


def strip_hash(title: str) -> str:
    """A1111's "name [hash]" title -> the name."""
    return _HASH_SUFFIX.sub("", title.strip())


class Refiners:
    """Keeps the one refiner model loaded beside the base; another title replaces it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: LoadedRefiner | None = None

    @property
    def loaded(self) -> LoadedRefiner | None:
        return self._loaded

    def resolve(self, title: str) -> ModelEntry:
        try:
            return find_model(strip_hash(title), self.settings)
        except Exception as error:  # ModelError: a discovered model's title is needed
            raise RequestError(f"refiner_checkpoint: {error}") from error

    def get(self, title: str) -> LoadedRefiner:
        entry = self.resolve(title)
        if self._loaded is not None and self._loaded.entry == entry:
            return self._loaded
        declared = declared_pipeline(entry)
        if declared is not None and "StableDiffusionXL" not in declared:  # refused without loading it
            raise _not_sdxl(entry)
        from diffusers import AutoPipelineForImage2Image, StableDiffusionXLImg2ImgPipeline

        pipe = load_pipeline(entry, self.settings)
        if not is_sdxl(pipe):
            del pipe
            release_memory()
            raise _not_sdxl(entry)
        img2img = pipe if isinstance(pipe, StableDiffusionXLImg2ImgPipeline) else AutoPipelineForImage2Image.from_pipe(pipe)
        img2img.set_progress_bar_config(disable=True)
        self.unload()
        self._loaded = LoadedRefiner(entry, img2img, model_hash(entry, self.settings))
        return self._loaded

    def unload(self) -> None:
        if self._loaded is not None:
            self._loaded = None
            release_memory()


def _not_sdxl(entry: ModelEntry) -> RequestError:
    return RequestError(f"refiner_checkpoint: {entry.title} is not an SDXL model (a refiner must be an "
                        "SDXL refiner or base checkpoint)")


def declared_pipeline(entry: ModelEntry) -> str | None:
    """The pipeline class a model declares without loading it: a folder's model_index.json, or the
    bundled config a .safetensors file's shapes pick; None when that cannot be told cheaply."""
    try:
        if entry.kind in ("default", "diffusers"):
            index = json.loads((entry.path / "model_index.json").read_text())
        elif entry.kind == "single_file":
            folder = single_file.pick_config_dir(single_file.read_shapes(entry.path))
            index = json.loads((folder / "model_index.json").read_text())
        else:
            return None
    except (OSError, ValueError, ModelError):
        return None  # the load says what is wrong
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else None
