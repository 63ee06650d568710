"""Everything a run prepares once, before its first step, and hands to each of its passes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from studio.checkpoints.manager import LoadedModel
from studio.checkpoints.refiners import LoadedRefiner
from studio.checkpoints.upscalers import Upscalers
from studio.generation.backend import CompiledParts
from studio.generation.modes import ModeInputs
from studio.generation.results import Controls
from studio.generation.samplers import SamplerSpec
from studio.networks.manager import AppliedNetworks
from studio.prompting.conditioning import PromptInputs
from studio.request import GenerationRequest
from studio.settings import Settings


@dataclass(frozen=True)
class RunPlan:
    model: LoadedModel
    request: GenerationRequest  # resolved: seed, size, model, sampler (what the images record)
    sampling: GenerationRequest  # the same with the prompts as encoded (network tags taken out)
    inputs: ModeInputs  # the source and mask at the sampling size (img2img, inpaint)
    controls: Controls  # the enabled ControlNet units, their images and models
    refiner: LoadedRefiner | None  # the SDXL refiner, when the request names one
    networks: AppliedNetworks  # LoRAs, embeddings and VAE applied to the model
    prompts: PromptInputs  # both prompts parsed, scheduled and (when needed) encoded
    samplers: Mapping[str, SamplerSpec]
    upscalers: Upscalers
    settings: Settings = Settings()  # where models and detector weights are (ControlNet units' passes)
    preprocessors: Mapping[str, Any] = field(default_factory=dict)  # the run's preprocessor registry
    backend: str = "eager"  # the UNet's backend for this run: eager or openvino (studio/generation/backend.py)
    compiled: CompiledParts = field(default_factory=CompiledParts)  # the engine's OpenVINO parts
