"""The queue in front of the one engine: who waits, who runs next, who may stop what.

Every generation is a `Job` of an owner (a logged-in user, a browser session or an API client).
A job runs one batch-count iteration per turn; between turns the next turn goes round-robin to
the owner served longest ago (first come, first served within an owner), so one user's batch of
100 does not starve the others. Each job carries its own interrupt and skip events: the engine
checks those of the job it runs (one `Event.is_set()` per step, as before), so stopping a job
never touches another's. The queue holds at most `size` jobs (queued or running): beyond it,
`QueueFullError` (a 503 / a visible message at the edges), never a hang.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from studio.errors import StudioError

LOCAL = "local"  # the owner of jobs submitted without one (CLI, scripts, extensions)
DEFAULT_QUEUE_SIZE = 16
DEFAULT_PER_USER = 4


class QueueFullError(StudioError):
    """The queue holds its maximum of jobs: try again later (HTTP 503)."""


class QueueShareError(QueueFullError):
    """The owner already has its share of the queue (--queue-per-user) waiting or running (HTTP 429)."""


class JobCancelled(StudioError):
    """The job was cancelled before its first image batch ran."""


@dataclass(eq=False)
class Job:
    owner: str  # whose turn it is in the round-robin (user, else session, else API client)
    session: str  # what a browser tab's Cancel / close acts on (the owner for API clients)
    steps: int  # sampling steps of one iteration (for the ETA)
    iterations: int  # batch count: one turn each
    order: int = 0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    interrupt: threading.Event = field(default_factory=threading.Event)  # stop (running) / cancel (queued)
    skip: threading.Event = field(default_factory=threading.Event)  # drop the iteration being sampled
    state: str = "queued"  # queued -> running <-> waiting -> done
    done_iterations: int = 0
    progress: Any = None  # the engine's Progress at this job's latest step
    ran_for: float = 0.0  # seconds spent in turns before the current one
    turn_started: float = 0.0

    @property
    def cancelled(self) -> bool:
        return self.interrupt.is_set()

    @property
    def queued(self) -> bool:
        """Still waiting for its first turn."""
        return self.state == "queued"


@dataclass(frozen=True)
class Place:
    """Where a job stands: 1 = running (or next), `ahead` jobs run before it, `eta` seconds until
    it finishes (None until a step has been measured)."""

    position: int
    ahead: int
    wait: float | None  # seconds until its next turn starts
    eta: float | None  # seconds until it is finished

    def text(self) -> str:
        if self.position <= 0:
            return ""
        eta = "measuring…" if self.eta is None else clock(self.eta)
        return f"In queue: position {self.position} ({self.ahead} job(s) ahead) · ETA {eta}"


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


class JobQueue:
    """Held by the studio (not global). Threads call `add`, then `turn(job)` once per iteration."""

    def __init__(self, size: int = DEFAULT_QUEUE_SIZE, clock: Callable[[], float] = time.monotonic,
                 per_user: int | None = None) -> None:
        self.size = size
        # Each owner's share (LOCAL, the operator's CLI and scripts, has none): so that one user's
        # jobs never fill the queue, another is admitted while others hold fewer than `size` jobs.
        self.per_user = per_user if per_user is not None else size
        self._holder: int | None = None  # the thread running the active turn (exclusive() re-enters it)
        self._clock = clock
        self._cond = threading.Condition()
        self._jobs: list[Job] = []  # not finished, in arrival order
        self._waiting: set[Job] = set()  # threads blocked in turn()
        self._active: Job | None = None
        self._served: dict[str, int] = {}  # owner -> when it was last given a turn
        self._counter = itertools.count()
        self._turns = itertools.count()
        self._seconds_per_step: float | None = None
        self._last_step: tuple[Job, float] | None = None

    # -- joining and leaving -----------------------------------------------------------------
    def add(self, owner: str, session: str | None = None, steps: int = 1, iterations: int = 1) -> Job:
        with self._cond:
            owned = sum(1 for job in self._jobs if job.owner == owner)
            if owner != LOCAL and owned >= self.per_user:
                raise QueueShareError(f"you already have {owned} job(s) waiting or running, your share of the queue "
                                      f"(--queue-per-user {self.per_user}): wait for one to finish")
            if len(self._jobs) >= self.size:
                raise QueueFullError(f"the queue is full ({self.size} jobs): try again in a moment")
            job = Job(owner, session or owner, max(1, steps), max(1, iterations), next(self._counter))
            self._jobs.append(job)
            return job

    def finish(self, job: Job) -> None:
        with self._cond:
            job.state = "done"
            if job in self._jobs:
                self._jobs.remove(job)
            self._waiting.discard(job)
            if self._active is job:
                self._active = None
            self._cond.notify_all()

    @contextmanager
    def turn(self, job: Job) -> Iterator[None]:
        """Block until it is this job's turn (JobCancelled when it is cancelled meanwhile); run; give the turn back."""
        with self._cond:
            self._waiting.add(job)
            try:
                while not job.cancelled and (self._active is not None or self._pick(self._waiting) is not job):
                    self._cond.wait(timeout=1.0)
            finally:
                self._waiting.discard(job)
            if job.cancelled:
                self._cond.notify_all()
                raise JobCancelled("cancelled while waiting in the queue")
            self._active, job.state, self._holder = job, "running", threading.get_ident()
            self._served[job.owner] = next(self._turns)
            job.turn_started = self._clock()
        try:
            yield
        finally:
            with self._cond:
                job.ran_for += self._clock() - job.turn_started
                job.done_iterations += 1
                job.state = "waiting"
                self._active, self._holder = None, None
                self._last_step = None
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, owner: str, session: str | None = None, steps: int = 1) -> Iterator[Job | None]:
        """A heavy piece of work that is not a generation (Extras, a model switch): it takes a place
        (the same limits and shares: QueueFullError / QueueShareError at once) and one turn. On the
        thread that already holds the turn (a script switching models inside its job) it just runs."""
        if self._holder == threading.get_ident():
            yield None
            return
        job = self.add(owner, session, steps, 1)
        try:
            with self.turn(job):
                yield job
        finally:
            self.finish(job)

    def _pick(self, candidates: Any, served: dict[str, int] | None = None) -> Job | None:
        """Round-robin: the owner served longest ago (never served: first), its oldest job."""
        served = self._served if served is None else served
        return min(candidates, key=lambda job: (served.get(job.owner, -1), job.order), default=None)

    # -- stopping ------------------------------------------------------------------------------
    def cancel(self, job: Job) -> None:
        """Queued: it leaves the queue; running: it stops within one step (finished images are kept)."""
        job.interrupt.set()
        with self._cond:
            self._cond.notify_all()

    def jobs(self, owner: str | None = None, session: str | None = None) -> list[Job]:
        """Unfinished jobs (all of them when neither owner nor session is given), running first."""
        with self._cond:
            found = [job for job in self._jobs if (owner is None or job.owner == owner)
                     and (session is None or job.session == session)]
        return sorted(found, key=lambda job: (job is not self._active, job.order))

    def interrupt(self, owner: str | None = None, session: str | None = None) -> int:
        """Cancel/stop the jobs of the owner or session (every job when both are None); how many."""
        found = self.jobs(owner, session)
        for job in found:
            self.cancel(job)
        return len(found)

    def skip(self, owner: str | None = None, session: str | None = None) -> int:
        """Skip the current iteration of the owner's (or session's) running job."""
        found = [job for job in self.jobs(owner, session) if job.state == "running"]
        for job in found:
            job.skip.set()
        return len(found)

    # -- where things stand --------------------------------------------------------------------
    @property
    def active(self) -> Job | None:
        return self._active

    def note_step(self, job: Job, progress: Any) -> None:
        """Called on each step of the running job: keeps its progress and measures seconds per step."""
        job.progress = progress
        now = self._clock()
        last = self._last_step
        if last is not None and last[0] is job and getattr(progress, "step", 0) > 0:
            took = now - last[1]
            self._seconds_per_step = took if self._seconds_per_step is None else 0.8 * self._seconds_per_step + 0.2 * took
        self._last_step = (job, now)

    @property
    def seconds_per_step(self) -> float | None:
        return self._seconds_per_step

    def place(self, job: Job) -> Place:
        """Position, jobs ahead and ETA, by replaying the round-robin over what is queued now."""
        with self._cond:
            jobs = list(self._jobs)
            active, served = self._active, dict(self._served)
        if job not in jobs:
            return Place(0, 0, 0.0, 0.0)
        rate = self._seconds_per_step
        remaining = {other: other.iterations - other.done_iterations for other in jobs}
        spent, ahead, wait = 0.0, set(), None
        if active is not None:  # the running iteration finishes first
            step = getattr(active.progress, "step", 0) if active.progress is not None else 0
            spent += max(0, active.steps - step)
            remaining[active] -= 1
            if active is job:
                wait = 0.0
            else:
                ahead.add(active)
        turns = itertools.count(max(served.values(), default=0) + 1)
        while remaining[job] > 0:
            chosen = self._pick([other for other, count in remaining.items() if count > 0], served)
            assert chosen is not None
            if chosen is job and wait is None:
                wait = spent
            if wait is None:
                ahead.add(chosen)
            served[chosen.owner] = next(turns)
            remaining[chosen] -= 1
            spent += chosen.steps
        position = 1 if active is job else len(ahead) + 1
        if rate is None:
            return Place(position, len(ahead), None, None)
        return Place(position, len(ahead), (wait or 0.0) * rate, spent * rate)


class QueuedRuns:
    """The engine as `jobs.generate` sees it, for one job: each batch-count iteration runs in its
    own turn of the queue (so other owners' jobs run in between), with the job's own stop events.
    Image indexes and seeds are those of the whole request, so the saved images do not change."""

    def __init__(self, engine: Any, queue: JobQueue, job: Job) -> None:
        self.engine, self.queue, self.job = engine, queue, job

    def run(self, request: Any, on_step: Callable[[Any], None] | None = None, prompts_for: Any = None,
            on_image: Any = None) -> Any:
        result = None
        for iteration in range(request.n_iter):
            try:
                with self.queue.turn(self.job):
                    part = self.engine.run(request, self._on_step(on_step), prompts_for, on_image, control=self.job,
                                           iterations=range(iteration, iteration + 1))
            except JobCancelled:
                if result is None:
                    raise
                return dataclasses.replace(result, interrupted=True)
            result = part if result is None else dataclasses.replace(
                part, images=result.images + part.images, skipped=result.skipped + part.skipped)
            if part.interrupted:
                break
        return result

    def _on_step(self, on_step: Callable[[Any], None] | None) -> Callable[[Any], None]:
        job, queue = self.job, self.queue

        def step(progress: Any) -> None:
            # The job's whole run time so far (not this turn's), so the progress ETA covers all its iterations.
            progress = dataclasses.replace(progress, started=job.turn_started - job.ran_for)
            queue.note_step(job, progress)
            if on_step is not None:
                on_step(progress)

        return step
