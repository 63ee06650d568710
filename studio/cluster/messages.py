"""What travels between the ingress and the replicas: small frozen, picklable records (no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from studio.request import GenerationRequest


@dataclass(frozen=True)
class Replica:
    """Who ran a job: the Serve replica id, its process and node (as `/studio/v1/cluster` shows them)."""

    id: str
    pid: int
    node: str
    torch_threads: int


@dataclass(frozen=True)
class JobOrder:
    """One generation for a replica. `job_id` names it on the progress board (the same id on a retry)."""

    job_id: str
    request: GenerationRequest
    save: bool  # the replica saves into a scratch folder and ships the files' images (with companions)
    on_step: bool = True  # report progress to the board
    # The options store's `backend` at the ingress when the job was sent (Settings or /sdapi/v1/options):
    # the replica runs the job on it. None: the replica's own choice (its --backend).
    backend: str | None = None


@dataclass(frozen=True)
class ShippedImage:
    image: Image.Image
    infotext: str
    seed: int
    recipe: dict[str, Any]
    saved: bool  # the replica saved it (the ingress saves it again, with its companions, in outputs/)
    companions: dict[str, Image.Image] = field(default_factory=dict)  # {"init": ..., "mask": ..., "control-0": ...}


@dataclass(frozen=True)
class ReplicaResult:
    """jobs.JobResult as shipped back: images by value, no paths."""

    request: GenerationRequest
    images: list[ShippedImage]
    interrupted: bool
    notices: tuple[str, ...]
    skipped: int
    replica: Replica
