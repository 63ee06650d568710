"""The SDXL refiner (A1111 >= 1.6's "Refiner" and "Switch at").

The base model denoises the first `refiner_switch_at` of the schedule and hands its latents over
(diffusers' `denoising_end`, output_type="latent"); the refiner's img2img pipeline
(StableDiffusionXLImg2ImgPipeline) finishes from there (`denoising_start`, no noise added) and
decodes with its own VAE, as A1111 does after it swaps models. The refiner is a second model from
models/Stable-diffusion, loaded once and kept beside the resident base (no reload between runs).
Each image gets a fresh generator from its own seed for the refiner's steps, so a seed reproduces
the whole run.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoPipelineForImage2Image, DiffusionPipeline, StableDiffusionXLImg2ImgPipeline

from studio.checkpoints import single_file
from studio.checkpoints.catalog import ModelEntry, find_model, model_hash
from studio.checkpoints.loading import load_pipeline
from studio.checkpoints.manager import release_memory
from studio.errors import ModelError
from studio.prompting.conditioning import PromptInputs
from studio.request import GenerationRequest, RequestError
from studio.settings import Settings

_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]$")


@dataclass
class LoadedRefiner:
    entry: ModelEntry
    pipe: StableDiffusionXLImg2ImgPipeline  # what engine.scheduler_for reads (.pipe.scheduler)
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


def check_base(pipe: DiffusionPipeline, title: str) -> None:
    """The base hands over with `denoising_end`, which only SDXL pipelines take."""
    if not is_sdxl(pipe):
        raise RequestError(f"refiner_checkpoint: the SDXL refiner needs an SDXL base model; {title} is not one")


def base_kwargs(request: GenerationRequest) -> dict[str, Any]:
    """What the base pass adds: stop at the switch point, hand over latents."""
    return {"denoising_end": float(request.refiner_switch_at), "output_type": "latent"}


def pass_kwargs(request: GenerationRequest, prompts: PromptInputs, latents: torch.Tensor,
                seeds: list[int]) -> dict[str, Any]:
    """img2img arguments of the refiner's pass (scheduler, callback and output type are the engine's).
    Prompt schedules ([a:b:0.5]) continue with the embeddings of the switch step."""
    count = len(seeds)
    if prompts.conditioning is None:
        text: dict[str, Any] = prompts.pipeline_kwargs(count)
    else:
        switch_step = int(request.refiner_switch_at * request.steps)
        text = prompts.conditioning.pipeline_kwargs(switch_step, count)
    return dict(
        **text,
        image=latents,
        num_inference_steps=request.steps,
        denoising_start=float(request.refiner_switch_at),
        guidance_scale=request.cfg_scale,
        generator=[torch.Generator(device="cpu").manual_seed(seed) for seed in seeds],
    )


def infotext(request: GenerationRequest, refiner: LoadedRefiner | None) -> dict[str, Any]:
    """A1111's keys: `Refiner: <title> [hash]`, `Refiner switch at: 0.8`."""
    if refiner is None or not request.uses_refiner:
        return {}
    return {"Refiner": f"{refiner.title} [{refiner.hash}]", "Refiner switch at": f"{request.refiner_switch_at:g}"}
