"""The services container when the engine runs on Ray Serve replicas.

Everything that needs no model stays here (discovery, styles, PNG Info, history, extensions'
listings and tabs: the same services as on one machine); what needs a model goes to a replica
holding it: generations, reproductions and Extras runs (`RemoteGeneration`, `RemoteModels`,
`RemoteExtras`). Model facts (hash, scheduler and UNet configs, sizes) are fetched once per model
from a replica, so listings never load a model at the ingress. Outputs are saved here, once the
replica's answer is in: a job retried after a replica died is saved once, and the replicas'
scratch files never reach outputs/.
"""
from __future__ import annotations

import dataclasses
import io
import json
import random
import threading
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from studio.checkpoints.catalog import DEFAULT_MODEL_TITLE, find_model
from studio.checkpoints.manager import ModelManager
from studio.cluster.client import ClusterClient, as_progress, new_job_id
from studio.cluster.messages import JobOrder, ShippedImage
from studio.generation.engine import Engine
from studio.generation.extras_request import ExtrasRequest
from studio.generation.results import Progress
from studio.records import storage
from studio.records.reproduce import NoRecipeError, read_recipe, recipe_warnings
from studio.request import MAX_SEED, GenerationRequest
from studio.service.admission import admit
from studio.service.container import Services
from studio.service.control import ControlService, merged_preprocessors
from studio.service.extensions.manager import ExtensionManager
from studio.service.extensions.service import ExtensionService
from studio.service.extras import ExtrasService
from studio.service.generation import refuse_unknown_model
from studio.service.generation_base import GenerationService, StepCallback
from studio.service.models import ModelService
from studio.service.networks import NetworkService
from studio.service.options import OptionsService
from studio.service.outputs import OutputService
from studio.service.queue import Job
from studio.service.results import JobResult, ModelFacts, Reproduction, SavedImage
from studio.service.styles import StyleService
from studio.settings import Settings


class RemoteModels(ModelService):
    """The model of requests that name none is the one selected here; a replica loads it."""

    def __init__(self, settings: Settings, engine: Engine, client: ClusterClient) -> None:
        super().__init__(settings, engine)
        self.client = client
        self.selected: str | None = None
        self._facts: dict[str, ModelFacts] = {}
        self._lock = threading.Lock()

    def current_title(self) -> str:
        return self.selected or self.settings.model or DEFAULT_MODEL_TITLE

    def facts(self, title: str | None = None) -> ModelFacts:
        """Hash, configs and sizes of a model, from a replica holding it (once per model)."""
        title = title or self.current_title()
        with self._lock:
            known = self._facts.get(title)
        if known is None:
            known = self.client.call("describe", title)
            with self._lock:
                self._facts[title] = known
        return known

    def native_size(self) -> int:
        return self.facts().native_size

    def title_of(self, name: str | None) -> str:
        """The canonical title a request runs on (unknown names are refused here, before any replica)."""
        if name is None or name == self.current_title():
            return self.current_title()
        return find_model(name, self.settings).title

    def load(self, title: str, *, allow_hub: bool = False, owner: str | None = None) -> str:
        """Make `title` the model of requests that name none; a replica loads it now (between its jobs)."""
        entry = find_model(title, self.settings, allow_hub=allow_hub or self.settings.allow_hub)
        self.facts(entry.title)
        self.selected = entry.title
        return entry.title


class RemoteGeneration(GenerationService):
    """Jobs run on the replicas side by side: no local queue; random seeds are drawn here, so a
    retry on another replica makes the same images."""

    def __init__(self, settings: Settings, client: ClusterClient, models: RemoteModels, networks: NetworkService,
                 outputs: OutputService, capacity: int) -> None:
        self.settings = settings
        self.client = client
        self.models = models
        self.networks = networks
        self.outputs = outputs
        self.parallel_jobs = capacity  # jobs the replicas can run at once (the web layer lets this many through)
        self.options: OptionsService | None = None  # the store (Settings, /sdapi/v1/options) the jobs follow

    def backend(self) -> str | None:
        """The options' `backend` now: each job tells its replica (None: the replicas' --backend)."""
        return self.options.get("backend") if self.options is not None else None

    def submit(self, request: GenerationRequest, on_step: StepCallback | None = None, save: bool = True,
               directory: Path | None = None, owner: str | None = None, user: str | None = None,
               job: Job | None = None) -> JobResult:
        request = admit(request, self.settings.control_net_unit_count)
        if request.seed == -1:
            request = request.replace(seed=random.randint(0, MAX_SEED))
        if request.subseed_strength > 0 and request.subseed < 0:  # variation seed
            request = request.replace(subseed=random.randint(0, MAX_SEED))
        model = self.models.title_of(request.model)
        request = request.replace(model=model,
                                  vae=request.vae if request.vae is not None else self.networks.selected_vae())
        result = self.client.run_job(JobOrder(new_job_id(), request, save, backend=self.backend()), model, on_step)
        target = directory or storage.output_dir(self.outputs.folder(user),
                                                 "txt2img" if result.request.mode == "txt2img" else "img2img")
        images = [land(shipped, target) for shipped in result.images]
        return JobResult(result.request, images, result.interrupted, result.notices, result.skipped)

    def reproduce_image(self, source: Path | Image.Image, save: bool = False, user: str | None = None,
                        owner: str | None = None) -> Reproduction:
        recipe = read_recipe(source)
        refuse_unknown_model(recipe.request.model, self.models.titles())
        admit(recipe.request, self.settings.control_net_unit_count)
        made: Reproduction = self.client.call("reproduce", self.models.title_of(recipe.request.model), png_bytes(source),
                                              self.backend())
        if not save:
            return made
        folder = "txt2img" if made.request.mode == "txt2img" else "img2img"
        saved = made.image
        path = storage.save_png(saved.image, storage.output_dir(self.outputs.folder(user), folder), saved.seed,
                                saved.infotext, saved.recipe)
        return Reproduction(dataclasses.replace(saved, path=path), made.request, made.warnings)

    def reproduce_warnings(self, path: Path) -> list[str]:
        try:
            return recipe_warnings(read_recipe(path), self.models.engine.models)
        except NoRecipeError as error:
            return [str(error)]

    def busy(self) -> bool:
        return bool(self.client.running())

    def progress(self) -> Progress:
        """The progress of the job of this ingress that has run longest (A1111's one current job)."""
        board = self.client.board_snapshot()
        reports = [board[job].progress for job in self.client.running() if job in board and board[job].progress]
        if not reports:
            return Progress()
        return as_progress(max(reports, key=lambda report: report["elapsed"]))

    def interrupt(self, owner: str | None = None, session: str | None = None) -> None:
        self.client.interrupt()  # the replicas' jobs are interrupted all at once

    def skip(self, owner: str | None = None, session: str | None = None) -> None:
        self.client.skip()


class RemoteExtras(ExtrasService):
    def __init__(self, settings: Settings, engine: Engine, outputs: OutputService, client: ClusterClient,
                 models: RemoteModels) -> None:
        super().__init__(settings, engine, outputs)
        self.client = client
        self.models = models

    def upscale(self, images: Sequence[Any], request: ExtrasRequest) -> list[Image.Image]:
        loaded = [source() if callable(source) else source for source in images]
        results, _info = self.client.call("extras", self.models.current_title(), loaded,
                                          dataclasses.asdict(request))
        return results


class ClusterView:
    """GET /studio/v1/cluster: the replicas that answered jobs from here, and the jobs in flight."""

    def __init__(self, client: ClusterClient, models: RemoteModels, capacity: int) -> None:
        self.client, self.models, self.capacity = client, models, capacity

    def cluster_status(self) -> dict[str, Any]:
        stats, board = self.client.stats, self.client.board_snapshot()
        with stats.lock:
            served = {replica: {"jobs": count, "models": sorted(stats.models_by_replica.get(replica, ()))}
                      for replica, count in stats.jobs_by_replica.items()}
            retries = stats.retries
            recent = [{"replica": replica, "model": model} for replica, model in stats.recent]
        running = []
        for job_id in self.client.running():
            state = board.get(job_id)
            replica = state.replica if state is not None else None
            running.append({"job": job_id, "attempts": state.attempts if state else 0,
                            "replica": dataclasses.asdict(replica) if replica else None,
                            "progress": state.progress if state else None})
        return {"model": self.models.current_title(), "capacity": self.capacity,
                "replicas": self.client.replica_states(), "served": served, "retries": retries,
                "recent": recent, "running": running}


def connect_services(settings: Settings, client: ClusterClient, capacity: int) -> Services:
    """The container over the replicas: the same services as on one machine where no model is
    needed, the remote ones where it is."""
    manager = ExtensionManager(settings).load_all()
    engine = Engine(ModelManager(settings), manager.samplers, merged_preprocessors(manager))  # registries only
    styles = StyleService(settings)
    outputs = OutputService(settings, styles)
    models = RemoteModels(settings, engine, client)
    networks = NetworkService(settings, engine.networks, models)
    generation = RemoteGeneration(settings, client, models, networks, outputs, capacity)
    options = OptionsService(settings, networks, tuple(models.sampler_names()))
    generation.options = options  # Settings' and /sdapi/v1/options' backend travels with every job
    return Services(
        settings=settings, generation=generation, models=models, networks=networks,
        control=ControlService(settings, models, engine.preprocessors), outputs=outputs,
        extras=RemoteExtras(settings, engine, outputs, client, models), styles=styles,
        extensions=ExtensionService(settings, manager, generation, models, outputs.folder),
        cluster=ClusterView(client, models, capacity), options=options,
    )


def land(shipped: ShippedImage, directory: Path) -> SavedImage:
    """A replica's image as a SavedImage; saved in `directory` (with its companions) when the replica saved it."""
    path = None
    if shipped.saved:
        path = storage.save_png(shipped.image, directory, shipped.seed, shipped.infotext, shipped.recipe,
                                companions=shipped.companions)
    return SavedImage(shipped.image, path, shipped.infotext, shipped.seed, shipped.recipe)


def png_bytes(source: Path | Image.Image) -> bytes:
    """The PNG a reproduction starts from, with its text chunks (the recipe travels inside)."""
    if not isinstance(source, Image.Image):
        return Path(source).read_bytes()
    recipe = source.info.get(storage.STUDIO_KEY)
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", pnginfo=storage.png_info(source.info.get(storage.PARAMETERS_KEY, ""),
                                                               json.loads(recipe) if recipe else None))
    return buffer.getvalue()

