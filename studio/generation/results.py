"""What a run reports while it goes (Progress) and gives back (RunResult): plain records."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from PIL import Image

from studio.checkpoints.manager import LoadedModel
from studio.checkpoints.refiners import LoadedRefiner
from studio.networks.manager import AppliedNetworks
from studio.request import ControlUnit, GenerationRequest


@dataclass
class Progress:
    """What a progress bar or the API's /progress shows. Replaced, never shared across runs."""

    step: int = 0
    steps: int = 0
    image: int = 0  # index of the batch being sampled (0-based)
    images: int = 0  # number of batches in this run
    started: float = 0.0
    phase: str = ""  # "hires" while the hires fix's second pass runs
    latents: Any = field(default=None, repr=False)  # the running pass's latents (a torch tensor)

    @property
    def fraction(self) -> float:
        if not self.steps or not self.images:
            return 0.0
        return min(1.0, (self.image * self.steps + self.step) / (self.steps * self.images))

    @property
    def eta(self) -> float:
        elapsed = time.monotonic() - self.started
        return elapsed / self.fraction - elapsed if self.fraction > 0 else 0.0


StepCallback = Callable[[Progress], None]


class RunControl(Protocol):
    """A job's own stop events (studio.service.queue.Job): set by its owner's Interrupt / Skip."""

    interrupt: threading.Event
    skip: threading.Event


# image index in the run -> (prompt, negative prompt) of that image (e.g. dynamic prompts per image)
PromptsFor = Callable[[int], "tuple[str, str]"]
ImageCallback = Callable[["RunResult", "GeneratedImage"], None]


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    seed: int
    index: int  # position in the whole run (batch pos + iteration * batch size)
    prompts: tuple[str, str] | None = None  # its own (prompt, negative) when a PromptsFor gave them


MODEL_FREE = ("reference", "ip-adapter")  # unit types that steer the UNet without a ControlNet model


@dataclass(frozen=True)
class Controls:
    """The enabled ControlNet units of a run with their loaded models and prepared images (every
    unit: reference_only's title is "None", an IP-Adapter's is its file)."""

    units: tuple[ControlUnit, ...] = ()
    titles: tuple[str, ...] = ()
    images: tuple[Image.Image, ...] = ()

    def controlnets(self) -> "Controls":
        """Only the units a ControlNet model runs (what the ControlNet pipelines take)."""
        kept = [i for i, unit in enumerate(self.units) if unit.control_type not in MODEL_FREE]
        return Controls(tuple(self.units[i] for i in kept), tuple(self.titles[i] for i in kept),
                        tuple(self.images[i] for i in kept))

    def of_type(self, control_type: str) -> list[tuple[ControlUnit, str, Image.Image]]:
        return [(u, t, i) for u, t, i in zip(self.units, self.titles, self.images) if u.control_type == control_type]


@dataclass(frozen=True)
class RunResult:
    request: GenerationRequest  # resolved: real seed, size, model title, sampler name
    model: LoadedModel
    images: list[GeneratedImage]
    interrupted: bool
    controls: Controls = Controls()
    skipped: int = 0  # iterations (batch-count steps) dropped by Engine.skip()
    networks: AppliedNetworks = AppliedNetworks()  # LoRAs, embeddings and VAE the run used, with hashes
    refiner: LoadedRefiner | None = None  # the SDXL refiner the run used (studio/generation/passes/refiner.py)
