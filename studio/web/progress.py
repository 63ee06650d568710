"""Jobs: /sdapi/v1/progress and /interrupt (plain defs: they answer while a job runs)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter

from studio.facade import StudioFacade
from studio.web.responses import encode_png
from studio.web.schemas import ProgressResponse

PREFIX = "/sdapi/v1"


class Interrupts:
    """When /interrupt was last called, to report state.interrupted for the running job."""

    def __init__(self) -> None:
        self.at = float("-inf")
        self.skipped_at = float("-inf")


def routes(router: APIRouter, studio: StudioFacade) -> None:
    interrupts = Interrupts()

    @router.get(f"{PREFIX}/progress", response_model=ProgressResponse)
    def progress(skip_current_image: bool = False, preview: Literal["approx", "vae"] = "approx") -> dict[str, Any]:
        """`preview=vae` decodes the preview with the model's VAE (slower, exact colours)."""
        return progress_report(studio, interrupts, skip_current_image, preview)

    @router.post(f"{PREFIX}/skip")
    def skip() -> dict[str, Any]:
        """A1111's Skip: drop the running job's current iteration and go on with the next."""
        if studio.busy():
            interrupts.skipped_at = time.monotonic()
        studio.skip()
        return {}

    @router.post(f"{PREFIX}/interrupt")
    def interrupt() -> dict[str, Any]:
        if studio.busy():
            interrupts.at = time.monotonic()
        studio.interrupt()
        return {}


def progress_report(studio: StudioFacade, interrupts: Interrupts, skip_image: bool, preview: str) -> dict[str, Any]:
    busy, current = studio.busy(), studio.progress()
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
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}
    image = None if skip_image else studio.preview(preview)
    return {"progress": current.fraction, "eta_relative": current.eta, "state": state,
            "current_image": encode_png(image) if image is not None else None, "textinfo": None}
