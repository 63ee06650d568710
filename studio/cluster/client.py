"""The ingress side of the replicas: calls that survive a replica's death, and job progress.

A call goes to the replica Serve picks for its model; when that replica dies before answering,
the same call (same job id, same seed) goes again, up to ATTEMPTS times; only the answer is
used, so a retried job is saved once. An error the job itself raised (a RequestError, a
ModelError) is raised here as it is, without Ray's wrapping.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

import ray
from ray.serve.exceptions import ReplicaUnavailableError

from studio.cluster.board import INTERRUPT, SKIP, JobState
from studio.cluster.messages import JobOrder, ReplicaResult
from studio.errors import StudioError
from studio.generation.results import Progress

ATTEMPTS = 4  # a job is tried on up to this many replicas
RETRY_PAUSE = 0.5  # seconds before trying again (the router learns the replica is gone)
POLL = 0.25  # seconds between progress polls while a job runs
RETRYABLE = (ray.exceptions.RayActorError, ReplicaUnavailableError)


class ClusterError(StudioError):
    """The replicas could not run a job (all attempts failed, or none is reachable)."""


@dataclass
class ClusterStats:
    """What this ingress sent where (for /studio/v1/cluster and the tests)."""

    jobs_by_replica: Counter = field(default_factory=Counter)
    models_by_replica: dict[str, set[str]] = field(default_factory=dict)
    retries: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=64))  # (replica id, model) of the last answers
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, result: ReplicaResult) -> None:
        with self.lock:
            self.jobs_by_replica[result.replica.id] += 1
            self.models_by_replica.setdefault(result.replica.id, set()).add(result.request.model or "")
            self.recent.append((result.replica.id, result.request.model or ""))


class ClusterClient:
    def __init__(self, handle: Any, board: Any, app_name: str = "") -> None:
        self.handle = handle
        self.app_name = app_name
        self.board = board
        self.stats = ClusterStats()
        self._running: set[str] = set()  # job ids in flight from this ingress
        self._lock = threading.Lock()

    def call(self, method: str, model: str | None, *args: Any) -> Any:
        """handle.<method>(*args) on a replica holding `model`, retried when the replica dies."""
        target = self.handle.options(multiplexed_model_id=model or "")
        return self._retried(lambda: getattr(target, method).remote(*args), lambda response: response.result())

    def run_job(self, order: JobOrder, model: str, on_step: Callable[[Progress], None] | None) -> ReplicaResult:
        """Run the job on a replica; while it runs, its progress goes to `on_step`."""
        ray.get(self.board.open.remote(order.job_id))
        with self._lock:
            self._running.add(order.job_id)
        target = self.handle.options(multiplexed_model_id=model)
        try:
            result = self._retried(lambda: target.generate.remote(order),
                                   lambda response: self._wait(response, order.job_id, on_step))
        except BaseException:  # e.g. the caller's on_step gave up: the replica stops too
            self.board.command.remote(order.job_id, INTERRUPT)
            raise
        finally:
            with self._lock:
                self._running.discard(order.job_id)
            self.board.close.remote(order.job_id)
        self.stats.record(result)
        return result

    def _retried(self, send: Callable[[], Any], wait: Callable[[Any], Any]) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return wait(send())
            except RETRYABLE as error:
                if attempt == ATTEMPTS:
                    raise ClusterError(f"no replica could run the job ({ATTEMPTS} tried; the last: "
                                       f"{type(error).__name__})") from error
                with self.stats.lock:
                    self.stats.retries += 1
                time.sleep(RETRY_PAUSE)
            except ray.exceptions.RayTaskError as error:  # the job's own error, raised as it was
                raise error.cause from None
        raise AssertionError("unreachable")

    def _wait(self, response: Any, job_id: str, on_step: Callable[[Progress], None] | None) -> Any:
        seen: dict[str, Any] | None = None
        while True:
            try:
                return response.result(timeout_s=POLL)
            except TimeoutError:
                pass
            if on_step is None:
                continue
            state = self.job_state(job_id)
            if state is not None and state.progress and state.progress != seen:
                seen = state.progress
                on_step(as_progress(seen))

    def replica_states(self) -> dict[str, int]:
        """Serve's count of the deployment's replicas by state (RUNNING, STARTING, ...)."""
        from ray import serve

        try:
            application = serve.status().applications.get(self.app_name)
        except Exception:  # the controller is unreachable: say nothing rather than fail the listing
            return {}
        if application is None:
            return {}
        return {str(state): count for deployment in application.deployments.values()
                for state, count in deployment.replica_states.items()}

    # -- progress and stop requests ------------------------------------------------------------
    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def job_state(self, job_id: str) -> JobState | None:
        return self.board_snapshot().get(job_id)

    def board_snapshot(self) -> dict[str, JobState]:
        try:
            return ray.get(self.board.snapshot.remote(), timeout=10)
        except (ray.exceptions.RayError, TimeoutError):
            return {}

    def interrupt(self, job_ids: list[str] | None = None) -> None:
        for job_id in self.running() if job_ids is None else job_ids:
            self.board.command.remote(job_id, INTERRUPT)

    def skip(self, job_ids: list[str] | None = None) -> None:
        for job_id in self.running() if job_ids is None else job_ids:
            self.board.command.remote(job_id, SKIP)


def new_job_id() -> str:
    return uuid.uuid4().hex


def as_progress(report: dict[str, Any]) -> Progress:
    """A replica's report as the engine's Progress (its start moved onto this machine's clock)."""
    return Progress(step=report["step"], steps=report["steps"], image=report["image"], images=report["images"],
                    started=time.monotonic() - report["elapsed"], phase=report.get("phase", ""))
