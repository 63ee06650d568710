"""ClusterStudio: the studio the web layer sees when the engine runs on Ray Serve replicas.

Everything that needs no model stays here (discovery, styles, PNG Info, history, extensions'
listings and tabs: the Studio it extends); what needs a model goes to a replica holding it:
generations, reproductions and Extras runs. Model facts (hash, scheduler and UNet configs, sizes)
are fetched once per model from a replica, so listings never load a model at the ingress.
Outputs are saved here, once the replica's answer is in: a job retried after a replica died is
saved once, and the replicas' scratch files never reach outputs/.
"""
from __future__ import annotations

import dataclasses
import io
import json
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from PIL import Image

from studio.api import ExtensionContext
from studio.checkpoints.catalog import DEFAULT_MODEL_TITLE, find_model
from studio.checkpoints.manager import ModelManager
from studio.cluster.client import ClusterClient, as_progress, new_job_id
from studio.cluster.messages import JobOrder, ModelFacts, ShippedImage
from studio.control.models import controlnet_mismatch
from studio.generation.engine import Engine, Progress
from studio.generation.samplers import available_samplers
from studio.networks import listing
from studio.records import storage
from studio.records.reproduce import read_recipe
from studio.request import MAX_SEED, GenerationRequest
from studio.service import jobs
from studio.service.extensions.manager import ExtensionManager
from studio.service.facade import LoadedInfo, Reproduction
from studio.service.studio import Studio, merged_preprocessors
from studio.settings import Settings

if TYPE_CHECKING:
    from studio.ui.context import UiContext


@dataclass
class ClusterStudio(Studio):
    client: ClusterClient | None = field(default=None, repr=False)
    capacity: int = 1  # jobs the replicas can run at once (the web layer lets this many through)
    selected: str | None = None  # the model of requests that name none (the UI's and /options' switch)
    _facts: dict[str, ModelFacts] = field(default_factory=dict, repr=False)
    _facts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def connect(cls, settings: Settings, client: ClusterClient, capacity: int) -> "ClusterStudio":
        models = ModelManager(settings)  # discovery only: nothing is loaded at the ingress
        extensions = ExtensionManager(settings).load_all()
        engine = Engine(models, extensions.samplers, merged_preprocessors(extensions))  # registries, listings
        return cls(settings, models, engine, extensions, client=client, capacity=capacity)

    queued_jobs: ClassVar[bool] = False  # replicas run jobs side by side: no local queue (studio/service/queue.py)

    @property
    def parallel_jobs(self) -> int:  # type: ignore[override]
        return self.capacity

    @property
    def remote(self) -> ClusterClient:
        assert self.client is not None
        return self.client

    # -- models -------------------------------------------------------------------------------
    def selected_model(self) -> str:
        return self.selected or self.settings.model or DEFAULT_MODEL_TITLE

    def facts(self, title: str | None = None) -> ModelFacts:
        """Hash, configs and sizes of a model, from a replica holding it (once per model)."""
        title = title or self.selected_model()
        with self._facts_lock:
            known = self._facts.get(title)
        if known is None:
            known = self.remote.call("describe", title)
            with self._facts_lock:
                self._facts[title] = known
        return known

    def model_title(self, name: str | None) -> str:
        """The canonical title a request runs on (unknown names are refused here, before any replica)."""
        if name is None or name == self.selected_model():
            return self.selected_model()
        return find_model(name, self.settings).title

    def load_model(self, title: str) -> str:
        """Make `title` the model of requests that name none; a replica loads it now (between its jobs)."""
        entry = find_model(title, self.settings, allow_hub=self.settings.allow_hub)
        self.facts(entry.title)
        self.selected = entry.title
        return entry.title

    def loaded_info(self) -> LoadedInfo | None:
        facts = self.facts()
        return LoadedInfo(facts.entry, facts.hash, facts.vae_scale_factor)

    def sampler_reasons(self) -> Mapping[str, str | None]:
        return available_samplers(self.facts().scheduler_config, self.engine.samplers)

    def controlnet_entries(self, model_title: str | None) -> list[Any]:
        return super().controlnet_entries(model_title or self.selected_model())

    def controlnet_fit(self) -> Mapping[str, str | None]:
        unet = self.facts().unet_config
        return {entry.title: controlnet_mismatch(entry, unet) for entry in self.controlnet_entries(None)}

    def controlnet_models(self) -> list[tuple[str, str]]:
        return [(entry.title, entry.control_type) for entry in self.controlnet_entries(None)]

    def embedding_items(self) -> dict[str, dict[str, Any]]:
        return listing.embedding_items(self.settings, self.facts().text_width)

    # -- jobs ---------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, on_step: Callable[[Progress], None] | None = None,
               save: bool = True, directory: Path | None = None, **_: Any) -> jobs.JobResult:
        """Validate here, run on a replica holding the request's model, save here. Random seeds
        are drawn here, so a retry on another replica makes the same images."""
        request = request.validate()
        if request.seed == -1:
            request = request.replace(seed=random.randint(0, MAX_SEED))
        if request.subseed_strength > 0 and request.subseed < 0:  # variation seed
            request = request.replace(subseed=random.randint(0, MAX_SEED))
        model = self.model_title(request.model)
        request = request.replace(model=model, vae=request.vae if request.vae is not None else self.selected_vae())
        result = self.remote.run_job(JobOrder(new_job_id(), request, save), model, on_step)
        target = directory or storage.output_dir(self.settings.outputs_dir,
                                                 "txt2img" if result.request.mode == "txt2img" else "img2img")
        images = [land(shipped, target) for shipped in result.images]
        return jobs.JobResult(result.request, images, result.interrupted, result.notices, result.skipped)

    def reproduce_image(self, source: Path | Image.Image, save: bool = False) -> Reproduction:
        recipe = read_recipe(source)
        self._refuse_unknown_model(recipe.request.model)
        made: Reproduction = self.remote.call("reproduce", self.model_title(recipe.request.model), png_bytes(source))
        if not save:
            return made
        folder = "txt2img" if made.request.mode == "txt2img" else "img2img"
        saved = made.image
        path = storage.save_png(saved.image, storage.output_dir(self.settings.outputs_dir, folder), saved.seed,
                                saved.infotext, saved.recipe)
        return Reproduction(dataclasses.replace(saved, path=path), made.request, made.warnings)

    def run_extras(self, images: list[Any], values: Mapping[str, Any], save: bool = True) -> tuple[list[Any], str]:
        results, info = self.remote.call("extras", self.selected_model(), list(images), dict(values))
        if not save:
            return results, info
        directory = storage.output_dir(self.settings.outputs_dir, "extras")
        return [storage.save_png(image, directory, 0, info) for image in results], info

    def busy(self) -> bool:
        return bool(self.remote.running())

    def progress(self) -> Progress:
        """The progress of the job of this ingress that has run longest (A1111's one current job)."""
        board = self.remote.board_snapshot()
        reports = [board[job].progress for job in self.remote.running() if job in board and board[job].progress]
        if not reports:
            return Progress()
        return as_progress(max(reports, key=lambda report: report["elapsed"]))

    def interrupt(self, *_: Any, **__: Any) -> None:
        self.remote.interrupt()

    def skip(self, *_: Any, **__: Any) -> None:
        self.remote.skip()

    def preview(self, method: str, *_: Any, **__: Any) -> Image.Image | None:
        return None  # latents stay on the replica; /progress reports steps without a preview image

    # -- what the UI and extensions get --------------------------------------------------------
    def extension_context(self, progress: Callable[[float, str], None] = lambda f, d: None,
                          notify: Callable[[str], None] = lambda t: None) -> ExtensionContext:
        return dataclasses.replace(super().extension_context(progress, notify), current_model=self.selected_model)

    def ui_context(self) -> "UiContext":
        return dataclasses.replace(
            super().ui_context(), interrupt=self.interrupt, skip=self.skip, current_model=self.selected_model,
            enqueue=None, interrupt_session=None, skip_session=None,  # no local queue: jobs go to the replicas
            native_size=lambda: self.facts().native_size, controlnet_models=self.controlnet_models,
        )

    def cluster_status(self) -> dict[str, Any]:
        """The replicas that answered jobs from here, and the jobs in flight (GET /studio/v1/cluster)."""
        stats, board = self.remote.stats, self.remote.board_snapshot()
        with stats.lock:
            served = {replica: {"jobs": count, "models": sorted(stats.models_by_replica.get(replica, ()))}
                      for replica, count in stats.jobs_by_replica.items()}
            retries = stats.retries
            recent = [{"replica": replica, "model": model} for replica, model in stats.recent]
        running = []
        for job_id in self.remote.running():
            state = board.get(job_id)
            replica = state.replica if state is not None else None
            running.append({"job": job_id, "attempts": state.attempts if state else 0,
                            "replica": dataclasses.asdict(replica) if replica else None,
                            "progress": state.progress if state else None})
        return {"model": self.selected_model(), "capacity": self.capacity,
                "replicas": self.remote.replica_states(), "served": served, "retries": retries,
                "recent": recent, "running": running}


def land(shipped: ShippedImage, directory: Path) -> jobs.SavedImage:
    """A replica's image as a SavedImage; saved in `directory` (with its companions) when the replica saved it."""
    path = None
    if shipped.saved:
        path = storage.save_png(shipped.image, directory, shipped.seed, shipped.infotext, shipped.recipe,
                                companions=shipped.companions)
    return jobs.SavedImage(shipped.image, path, shipped.infotext, shipped.seed, shipped.recipe)


def png_bytes(source: Path | Image.Image) -> bytes:
    """The PNG a reproduction starts from, with its text chunks (the recipe travels inside)."""
    if not isinstance(source, Image.Image):
        return Path(source).read_bytes()
    recipe = source.info.get(storage.STUDIO_KEY)
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", pnginfo=storage.png_info(source.info.get(storage.PARAMETERS_KEY, ""),
                                                               json.loads(recipe) if recipe else None))
    return buffer.getvalue()
