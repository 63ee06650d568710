"""The job board: progress and stop requests of the jobs in flight, shared by the ingress and the
replicas. It runs as one small Ray actor (launch.py wraps this plain class); the class itself
knows nothing of Ray, so it is tested as it is.

The ingress opens a job before sending it; the replica that runs it says so (`start`) and reports
each step (`report`); both answers carry the stop request pending for the job ("interrupt" sticks,
"skip" is taken once), so Interrupt works on a job still waiting for a replica, and on a retry.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from studio.cluster.messages import Replica

INTERRUPT, SKIP = "interrupt", "skip"


@dataclass(frozen=True)
class JobState:
    replica: Replica | None = None  # the replica running it (None: waiting for one)
    attempts: int = 0  # replicas that started it (more than 1: it was retried)
    progress: dict[str, Any] | None = None  # step, steps, image, images, elapsed, phase
    command: str | None = None


class JobBoard:
    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}

    def open(self, job_id: str) -> None:
        self.jobs.setdefault(job_id, JobState())

    def start(self, job_id: str, replica: Replica) -> str | None:
        job = self.jobs.get(job_id, JobState())
        self.jobs[job_id] = replace(job, replica=replica, attempts=job.attempts + 1, progress=None)
        return self._take_command(job_id)

    def report(self, job_id: str, progress: dict[str, Any]) -> str | None:
        if job_id not in self.jobs:
            return None
        self.jobs[job_id] = replace(self.jobs[job_id], progress=progress)
        return self._take_command(job_id)

    def command(self, job_id: str, command: str) -> None:
        if job_id in self.jobs and self.jobs[job_id].command != INTERRUPT:
            self.jobs[job_id] = replace(self.jobs[job_id], command=command)

    def close(self, job_id: str) -> JobState | None:
        return self.jobs.pop(job_id, None)

    def snapshot(self) -> dict[str, JobState]:
        return dict(self.jobs)

    def _take_command(self, job_id: str) -> str | None:
        command = self.jobs[job_id].command
        if command == SKIP:
            self.jobs[job_id] = replace(self.jobs[job_id], command=None)
        return command
