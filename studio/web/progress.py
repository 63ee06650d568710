"""Jobs: /sdapi/v1/progress, /interrupt and /skip, each about the caller's own job (/progress is an
async def that reads in-memory state and makes previews on its own thread, so it answers even when
heavy routes fill AnyIO's thread pool; /interrupt and /skip are plain defs). With --admin-interrupt, /interrupt and /skip act on the running job
whoever sent it (A1111's behaviour). A queued job's /progress says where it stands in the queue."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request

from studio.web.callers import Caller, caller
from studio.web.progress_previews import Previews
from studio.web.schemas import ProgressResponse

if TYPE_CHECKING:
    from studio.service.container import Services
    from studio.service.generation_base import GenerationService

PREFIX = "/sdapi/v1"


class Interrupts:
    """When /interrupt was last called, to report state.interrupted for the running job (a generation
    service without per-caller jobs: a cluster's jobs run on replicas, interrupted all at once)."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.skipped_at = float("-inf")


def routes(router: APIRouter, services: "Services") -> None:
    generation = services.generation
    per_caller = generation.queued
    admin = services.settings.admin_interrupt or not per_caller
    interrupts = Interrupts()
    previews = Previews(generation)

    @router.get(f"{PREFIX}/progress", response_model=ProgressResponse)
    async def progress(http: Request, skip_current_image: bool = False, preview: Literal["approx", "vae"] = "approx"
                       ) -> dict[str, Any]:
        """The caller's job: its steps, preview and ETA; while queued, its place (`queue`).
        `preview=vae` decodes the preview with the model's VAE (slower, exact colours)."""
        if not per_caller:  # a cluster asks its replicas' board (may wait): on the previews' own thread
            report, job, shown = await asyncio.get_running_loop().run_in_executor(
                previews.pool, global_report, generation, interrupts, skip_current_image)
        else:
            report, job, shown = progress_report(generation, caller(http).owner, skip_current_image)
        if shown is not None:
            report["current_image"] = await previews.encoded(preview, job, shown)
        return report

    @router.post(f"{PREFIX}/skip")
    def skip(who: Caller = Depends(caller)) -> dict[str, Any]:
        """A1111's Skip: drop the caller's running job's current iteration and go on with the next."""
        if generation.busy():
            interrupts.skipped_at = time.monotonic()
        generation.skip(None if admin else who.owner)
        return {}

    @router.post(f"{PREFIX}/interrupt")
    def interrupt(who: Caller = Depends(caller)) -> dict[str, Any]:
        """Stop the caller's jobs: the running one within a step (finished images kept), queued ones cancelled."""
        if generation.busy():
            interrupts.at = time.monotonic()
        generation.interrupt(None if admin else who.owner)
        return {}


Report = tuple[dict[str, Any], Any, Any]  # (the response without its image, the job, the progress to preview or None)


def progress_report(generation: "GenerationService", owner: str, skip_image: bool) -> Report:
    job = generation.caller_job(owner)
    current = job.progress if job is not None else None
    running = job is not None and job.state == "running" and current is not None
    started = current.started if current is not None else time.monotonic()
    started_wall = time.time() - (time.monotonic() - started)
    state = {
        "skipped": job is not None and job.skip.is_set(),
        "interrupted": job is not None and job.interrupt.is_set(),
        "stopping_generation": False,
        "job": "generate" if job is not None else "",
        "job_count": job.iterations if job is not None else 0,
        "job_timestamp": datetime.fromtimestamp(started_wall).strftime("%Y%m%d%H%M%S"),
        "job_no": current.image if current is not None else 0,
        "sampling_step": current.step if current is not None else 0,
        "sampling_steps": current.steps if current is not None else 0,
    }
    place = generation.queue.place(job) if job is not None else None
    queue = None
    if place is not None:
        queue = {"position": place.position, "ahead": place.ahead, "wait": place.wait, "eta": place.eta,
                 "queued": job.queued, "size": generation.queue.size, "text": place.text() if job.queued else ""}
    if job is None:
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None,
                "queue": None}, None, None
    fraction = current.fraction if current is not None else 0.0
    eta = place.eta if place is not None and place.eta is not None else (current.eta if current is not None else 0.0)
    return {"progress": fraction, "eta_relative": eta, "state": state, "current_image": None,
            "textinfo": place.text() if job.queued and place is not None else None, "queue": queue}, \
        job, None if skip_image or not running else current


def global_report(generation: "GenerationService", interrupts: Interrupts, skip_image: bool) -> Report:
    """A1111's one current job (a cluster: the job of this ingress that has run longest)."""
    busy, current = generation.busy(), generation.progress()
    started_wall = time.time() - (time.monotonic() - current.started) if current.started else time.time()
    state = {
        "skipped": busy and interrupts.skipped_at >= current.started,
        "interrupted": busy and interrupts.at >= current.started,
        "stopping_generation": False,
        "job": "generate" if busy else "",
        "job_count": current.images if busy else 0,
        "job_timestamp": datetime.fromtimestamp(started_wall).strftime("%Y%m%d%H%M%S"),
        "job_no": current.image,
        "sampling_step": current.step,
        "sampling_steps": current.steps,
    }
    if not busy:
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}, None, None
    return {"progress": current.fraction, "eta_relative": current.eta, "state": state, "current_image": None,
            "textinfo": None}, None, None if skip_image else current
