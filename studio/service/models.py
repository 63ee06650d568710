"""Models: what can run (discovered checkpoints, the sampler registry), what is loaded, and switching
between jobs (never during one: the switch takes the engine's turn)."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from studio.checkpoints.catalog import ModelEntry, discover_models
from studio.checkpoints.manager import LoadedModel
from studio.checkpoints.memory import memory_report
from studio.checkpoints.refiners import declared_pipeline
from studio.generation.engine import Engine
from studio.generation.samplers import (
    SCHEDULE_TYPES,
    SamplerSpec,
    available_samplers,
    available_schedule_types,
    resolve_sampler_name,
)
from studio.generation.schedules import SCHEDULES
from studio.networks.embeddings import text_width
from studio.service.queue import LOCAL, JobQueue
from studio.service.results import ModelFacts
from studio.settings import Settings


class ModelService:
    def __init__(self, settings: Settings, engine: Engine, queue: JobQueue | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.queue = queue  # a switch takes a place and a turn in generation's queue, like a job

    # -- what can run ----------------------------------------------------------------------------
    def entries(self) -> list[ModelEntry]:
        """Discovered afresh on every call (a refresh is a call)."""
        return discover_models(self.settings)

    def titles(self) -> list[str]:
        return [entry.title for entry in self.entries()]

    def refiner_titles(self) -> list[str]:
        """Models that can be the SDXL refiner: SDXL ones, as they declare themselves without loading."""
        return [entry.title for entry in self.entries() if "StableDiffusionXL" in (declared_pipeline(entry) or "")]

    def checkpoints_folder(self) -> Path:
        return self.settings.models_dir / "Stable-diffusion"

    def samplers(self) -> Mapping[str, SamplerSpec]:
        """The sampler registry: the core's and the extensions'."""
        return MappingProxyType(self.engine.samplers)

    def sampler_names(self) -> list[str]:
        return list(self.engine.samplers)

    def resolve_sampler(self, name: str) -> str:
        """A registry name or one of its aliases (A1111 clients send either); UnknownSamplerError."""
        return resolve_sampler_name(name, self.engine.samplers)

    def schedule_types(self) -> list[str]:
        """A1111's "Schedule type" labels (Automatic, Uniform, Karras, ...)."""
        return list(SCHEDULE_TYPES)

    def schedule_items(self) -> list[tuple[str, str]]:
        """(label, API name) of every schedule type."""
        return [(label, schedule.name) for label, schedule in SCHEDULE_TYPES.items()]

    def schedulers(self) -> list[dict[str, object]]:
        """A1111's /sdapi/v1/schedulers items: name, label, aliases, default_rho, need_inner_model."""
        return [{"name": s.name, "label": s.label, "aliases": list(s.aliases) or None,
                 "default_rho": s.default_rho, "need_inner_model": s.need_inner_model} for s in SCHEDULES.values()]

    def runnable_samplers(self) -> list[str]:
        """The samplers the loaded model can run (all while nothing is loaded): the UI's choices."""
        reasons = self.sampler_reasons()
        return [name for name in self.engine.samplers if not reasons.get(name)]

    def sampler_schedule_types(self, sampler: str) -> list[str]:
        """The schedule types this sampler takes on the loaded model ("Automatic" first)."""
        facts = self.facts()
        config = facts.scheduler_config if facts is not None else {}
        try:
            return available_schedule_types(sampler, config, self.engine.samplers)
        except LookupError:
            return ["Automatic"]

    def sampler_reasons(self) -> Mapping[str, str | None]:
        """Why each sampler cannot run on the loaded model (None: it can); nothing is loaded here."""
        facts = self.facts()
        return available_samplers(facts.scheduler_config, self.engine.samplers) if facts is not None else {}

    # -- what is loaded --------------------------------------------------------------------------
    def facts(self) -> ModelFacts | None:
        """The loaded model's facts (hash, configs, sizes); None while nothing is loaded (a listing
        never loads a model)."""
        loaded = self.engine.models.loaded
        return model_facts(loaded) if loaded is not None else None

    def current(self) -> LoadedModel:
        """The resident model, loaded on first use (this process only: a cluster has none here)."""
        return self.engine.models.current()

    def current_title(self) -> str:
        return self.current().entry.title

    def native_size(self) -> int:
        """The loaded model's default size (512 for SD 1.x, 768 for SD 2.x v, 1024 for SDXL)."""
        return self.current().native_size

    def unload(self) -> None:
        """Free the resident model between jobs (A1111's unload-checkpoint); the next job loads it again."""
        self.engine.unload_model()

    def memory(self) -> dict[str, Any]:
        """RAM and CUDA memory in A1111's /sdapi/v1/memory shape."""
        return memory_report()

    def reload(self) -> str:
        """Load the resident model again after unload() (A1111's reload-checkpoint); its title."""
        return self.engine.load_model(self.engine.models.resident_title, allow_hub=True).entry.title

    def load(self, title: str, *, allow_hub: bool = False, owner: str | None = None) -> str:
        """Switch models between jobs; returns the loaded title. A failure keeps the previous model.
        `allow_hub`: the caller (the command line) is trusted to name a Hub repo id. `owner`: whose
        place in the queue the switch takes (the operator's when None)."""
        with self.queue.exclusive(owner or LOCAL) if self.queue is not None else nullcontext():
            return self.engine.load_model(title, allow_hub=allow_hub).entry.title


def model_facts(loaded: LoadedModel) -> ModelFacts:
    pipe = loaded.pipe
    return ModelFacts(loaded.entry, loaded.hash, int(pipe.vae_scale_factor), loaded.native_size,
                      dict(pipe.scheduler.config), dict(pipe.unet.config), text_width(pipe), str(pipe.unet.dtype),
                      str(pipe.device))
