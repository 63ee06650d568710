"""The generation service as every edge sees it (web routes, Gradio tabs, CLI, extension scripts):
submit a job, follow it, stop it, reproduce an image. `service/generation.py` runs jobs on this
machine's engine behind the fair queue; `cluster/generation.py` runs them on Ray Serve replicas.
No torch here: the edges import this module, never the engine.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from PIL import Image

from studio.request import GenerationRequest
from studio.service.batch import BatchResult, folder_policy, run_img2img_batch
from studio.service.outputs import OutputService
from studio.service.queue import Job, JobQueue
from studio.service.results import JobResult, Reproduction
from studio.settings import Settings

StepCallback = Callable[[Any], None]  # called with the engine's Progress after every step


class GenerationService(ABC):
    settings: Settings
    outputs: OutputService  # each user's outputs folder
    parallel_jobs: int = 1  # jobs that run at once: 1 on the local engine, the replicas on a cluster
    queue: JobQueue | None = None  # the fair queue (None: jobs are not queued here, e.g. a cluster's)

    @property
    def queued(self) -> bool:
        """Jobs wait in `queue` (a place, per-caller interrupt, a bounded size)."""
        return self.queue is not None

    @abstractmethod
    def submit(self, request: GenerationRequest, on_step: StepCallback | None = None, save: bool = True,
               directory: Path | None = None, owner: str | None = None, user: str | None = None,
               job: Job | None = None) -> JobResult:
        """The one entry for every generation: admitted (limits checked before any work), queued
        under `owner` (or the place `job` already took), run, saved in the user's outputs."""

    @abstractmethod
    def reproduce_image(self, source: Path | Image.Image, save: bool = False, user: str | None = None,
                        owner: str | None = None) -> Reproduction:
        """Regenerate the image from its PNG's recipe (a PNG is hostile input: admitted like a request);
        it waits its turn in the queue under `owner` (the user's, else the operator's) like a job."""

    @abstractmethod
    def reproduce_warnings(self, path: Path) -> list[str]:
        """Why a reproduction of this PNG may differ here (model hash, library versions, threads)."""

    def acting_user(self) -> str | None:
        """The user whom work on this thread is for (acting_for), None when no one's: whose outputs folder
        a script's own images (grids) go to."""
        return None

    def reproduce(self, path: Path, user: str | None = None) -> tuple[str | None, str, list[str]]:
        """Regenerate the PNG's image and save it in the user's outputs: (path, infotext, warnings)."""
        result = self.reproduce_image(path, save=True, user=user, owner=f"user:{user}" if user else None)
        saved = result.image
        return (str(saved.path) if saved.path else None), saved.infotext, result.warnings

    @abstractmethod
    def busy(self) -> bool: ...

    @abstractmethod
    def progress(self) -> Any:
        """The running job's Progress (A1111's one current job)."""

    @abstractmethod
    def interrupt(self, owner: str | None = None, session: str | None = None) -> None:
        """Stop the owner's (or browser session's) jobs: the running one within a step (finished images
        are kept), queued ones cancelled. Neither given: the running job."""

    @abstractmethod
    def skip(self, owner: str | None = None, session: str | None = None) -> None:
        """Drop the current iteration of the owner's (or session's) running job and go on with the next."""

    # -- shutting down (studio.service.shutdown) --------------------------------------------------
    def has_jobs(self) -> bool:
        """A job runs or waits here."""
        return self.busy()

    def runs_on_this_thread(self) -> bool:
        """The calling thread is running a job (the CLI's main thread): a signal there only interrupts."""
        return False

    def stop_all(self) -> None:
        """Stop every job: the running one after its step (finished images are kept), queued ones cancelled."""
        self.interrupt()

    def interrupt_pending(self) -> bool:
        """An interrupt was asked for the running (or last) job here."""
        return False

    def preview(self, method: str, job: Job | None = None) -> Image.Image | None:
        """The running job's (or this job's) latest latents as an image; None when there are none here."""
        return None

    def live_preview(self, progress: Any) -> Image.Image | None:
        """The preview image for this step when one is due (every N steps, by the set method), else None."""
        return None

    # -- places in the queue (a service without a queue has none) --------------------------------
    def enqueue(self, request: GenerationRequest, owner: str, session: str | None = None) -> Job | None:
        """A place in the queue for this request, taken before the job's work starts (QueueFullError
        when it is full); None without a queue."""
        return None

    def queue_text(self, job: Job | None) -> str:
        """"In queue: position 2 …" while the job waits, "" once it runs."""
        if job is None or self.queue is None or not job.queued:
            return ""
        return self.queue.place(job).text()

    def cancel(self, job: Job) -> None:
        if self.queue is not None:
            self.queue.cancel(job)

    def caller_job(self, owner: str) -> Job | None:
        """The owner's running job, else its first queued one."""
        found = self.queue.jobs(owner=owner) if self.queue is not None else []
        return found[0] if found else None

    def close_session(self, session: str) -> None:
        """A browser tab closed: its queued jobs leave, its running job stops."""
        if self.queue is not None:
            self.queue.interrupt(session=session)

    @contextmanager
    def acting_for(self, owner: str, session: str | None = None, user: str | None = None) -> Iterator[None]:
        """Jobs submitted on this thread without an owner (a script's) are this caller's."""
        yield

    def img2img_batch(self, request: GenerationRequest, input_dir: str | Path, output_dir: str | Path | None = None,
                      mask_dir: str | Path | None = None, progress: Callable[[float, str], None] = lambda f, d: None,
                      user: str | None = None) -> BatchResult:
        """A1111's img2img "Batch" tab: every image of a server folder; a shared studio's user works
        in outputs/<user>/ (studio/service/batch.py, studio/service/folders.py)."""
        policy = folder_policy(self.settings, self.outputs.folder(user))
        return run_img2img_batch(self.submit, policy, request, input_dir, output_dir, mask_dir, progress, user)
