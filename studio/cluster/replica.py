"""The engine as a Ray Serve deployment: one studio (services container) per replica, holding one model.

Every call names its model as Serve's multiplexed model id, so Serve routes a job to a replica
that already holds that checkpoint (per-model routing) and a replica switches only when none
does. Jobs run in a worker thread (the engine's own lock keeps one job at a time; the deployment
takes one request at a time, so the router spreads jobs over the replicas). Torch threads are
set explicitly and recorded in every image's recipe, so a seed gives the same pixels on any
replica. Images come back by value; the ingress writes outputs/.
The options live at the ingress: a job carries the ones the replica must follow (its backend, in the
JobOrder; its VAE, in the request), so a change in Settings or /sdapi/v1/options reaches every
replica from the next job.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import ray
import torch
from PIL import Image
from ray import serve

from studio.checkpoints.devices import configure_threads
from studio.cluster.board import INTERRUPT, SKIP
from studio.cluster.messages import JobOrder, Replica, ReplicaResult, ShippedImage
from studio.generation.results import Progress
from studio.service.container import build_services
from studio.service.models import model_facts
from studio.service.results import ModelFacts, Reproduction, SavedImage
from studio.settings import Settings

REPORT_EVERY = 0.2  # seconds between progress reports to the board (each also fetches a stop request)


class StudioReplica:
    def __init__(self, settings: Settings, threads: int, board: Any) -> None:
        configure_threads(threads)
        self.services = build_services(settings)
        self.services.models.current()  # the start-up model, before the first job
        # The backend of the job running here (None: this replica's own choice, i.e. its --backend).
        # Serve gives a replica one request at a time, so one attribute serves every call.
        self.backend: str | None = None
        engine, own_choice = self.services.models.engine, self.services.models.engine.backend_choice
        engine.backend_choice = lambda: self.backend or own_choice()
        self.board = board
        context = serve.get_replica_context()
        self.replica = Replica(context.replica_id.unique_id, os.getpid(), ray.util.get_node_ip_address(),
                               torch.get_num_threads())

    @serve.multiplexed(max_num_models_per_replica=1)
    async def model(self, title: str) -> str:
        """Serve's per-model routing: this replica now holds `title` (loaded between jobs)."""
        await asyncio.to_thread(self.services.models.load, title)
        return title

    async def _hold_model(self) -> None:
        title = serve.get_multiplexed_model_id()
        if title:
            await self.model(title)

    async def generate(self, order: JobOrder) -> ReplicaResult:
        await self._hold_model()
        self.backend = order.backend
        return await asyncio.to_thread(self._generate, order)

    async def describe(self) -> ModelFacts:
        await self._hold_model()
        return await asyncio.to_thread(self._facts)

    async def reproduce(self, png: bytes, backend: str | None = None) -> Reproduction:
        await self._hold_model()
        self.backend = backend
        return await asyncio.to_thread(self._reproduce, png)

    async def extras(self, images: list[Image.Image], values: dict[str, Any]) -> tuple[list[Image.Image], str]:
        return await asyncio.to_thread(self.services.extras.run, images, values, False)

    def _generate(self, order: JobOrder) -> ReplicaResult:
        if self._tell(self.board.start.remote(order.job_id, self.replica)) == INTERRUPT:
            return ReplicaResult(order.request, [], True, (), 0, self.replica)  # stopped while it waited
        with tempfile.TemporaryDirectory(prefix="studio-job-") as scratch:
            on_step = self._reporter(order.job_id) if order.on_step else None
            result = self.services.generation.submit(order.request, on_step, save=order.save,
                                        directory=Path(scratch) if order.save else None)
            images = [ship(saved) for saved in result.images]
        return ReplicaResult(result.request, images, result.interrupted, result.notices, result.skipped, self.replica)

    def _reporter(self, job_id: str) -> Callable[[Progress], None]:
        last = [0.0]

        def on_step(progress: Progress) -> None:
            now = time.monotonic()
            if now - last[0] < REPORT_EVERY and progress.step < progress.steps:
                return
            last[0] = now
            report = {"step": progress.step, "steps": progress.steps, "image": progress.image,
                      "images": progress.images, "elapsed": now - progress.started, "phase": progress.phase}
            command = self._tell(self.board.report.remote(job_id, report))
            if command == INTERRUPT:
                self.services.generation.interrupt()
            elif command == SKIP:
                self.services.generation.skip()

        return on_step

    @staticmethod
    def _tell(reply: Any) -> str | None:
        """The board's answer; a board that cannot answer stops nothing (the job goes on)."""
        try:
            return ray.get(reply, timeout=10)
        except (ray.exceptions.RayError, TimeoutError):
            return None

    def _facts(self) -> ModelFacts:
        return model_facts(self.services.models.current())

    def _reproduce(self, png: bytes) -> Reproduction:
        import io

        with Image.open(io.BytesIO(png)) as image:
            image.load()
            return self.services.generation.reproduce_image(image, save=False)


def ship(saved: SavedImage) -> ShippedImage:
    """A finished image by value, with the inputs saved beside it (<name>-<suffix>.png)."""
    companions: dict[str, Image.Image] = {}
    if saved.path is not None:
        for path in sorted(saved.path.parent.glob(f"{saved.path.stem}-*.png")):
            with Image.open(path) as opened:
                companions[path.stem[len(saved.path.stem) + 1:]] = opened.copy()
    return ShippedImage(saved.image, saved.infotext, saved.seed, saved.recipe, saved.path is not None, companions)
