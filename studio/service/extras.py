"""Extras: upscale finished images (one, a batch, or a server folder) with the upscalers by A1111's
names, one job at a time like generation."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from PIL import Image

from studio.checkpoints import face_files
from studio.checkpoints.upscaler_files import UpscalerEntry, image_upscaler_names
from studio.generation.engine import Engine
from studio.generation.extras_request import ExtrasRequest
from studio.records import storage
from studio.service.batch import BatchResult, folder_policy, run_extras_folder
from studio.service.outputs import OutputService
from studio.service.queue import LOCAL, JobQueue
from studio.settings import Settings

ImageSource = Union[Image.Image, Callable[[], Image.Image]]


class ExtrasService:
    def __init__(self, settings: Settings, engine: Engine, outputs: OutputService, queue: JobQueue | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.outputs = outputs
        self.queue = queue  # generation's fair queue: an Extras run takes a place and a turn like a job

    def upscalers(self) -> Mapping[str, UpscalerEntry]:
        return self.engine.upscalers.entries()

    def upscaler_names(self) -> list[str]:
        """Every upscaler (hires fix takes latent modes too)."""
        return self.engine.upscalers.names()

    def image_upscaler_names(self) -> list[str]:
        """The ones that upscale pixels (Extras)."""
        return image_upscaler_names(self.upscalers())

    def face_restorers(self) -> list[dict[str, Any]]:
        """A1111's /sdapi/v1/face-restorers items for the restorers whose weights are in models/."""
        return face_files.api_items(self.settings.models_dir)

    def face_restoration_missing(self, name: str) -> str | None:
        """Why restorer `name` cannot run (the file to place and where), None when it can."""
        return face_files.missing_reason(self.settings.models_dir, name)

    def run(self, images: Sequence[ImageSource], values: Mapping[str, Any], save: bool = True,
            user: str | None = None, owner: str | None = None) -> tuple[list[Any], str]:
        """Upscale images with the Extras fields (A1111 names); saved to outputs/extras-images when `save`.
        An image may be given as a loader (decoded only when its turn comes, one at a time).
        Returns (saved paths, or the images when not saved; the info text)."""
        request = ExtrasRequest.from_dict(values)
        # A place in the same queue as generation (its size and per-user share, refused at once when
        # taken), then one turn: concurrent Extras wait there instead of each holding a thread on the engine.
        with self.queue.exclusive(owner or LOCAL) if self.queue is not None else nullcontext():
            results = self.upscale(images, request)
        info = request.info()
        if not save:
            return results, info
        directory = storage.output_dir(self.outputs.folder(user), "extras")
        return [storage.save_png(image, directory, 0, info) for image in results], info

    def upscale(self, images: Sequence[ImageSource], request: ExtrasRequest) -> list[Image.Image]:
        results = []
        for source in images:  # one decoded input at a time: a batch never holds every input at once
            image = source() if callable(source) else source
            results.extend(self.engine.run_extras([image], request))
            del image
        return results

    def folder(self, values: Mapping[str, Any], input_dir: str | Path, output_dir: str | Path | None = None,
               progress: Callable[[float, str], None] = lambda f, d: None, user: str | None = None) -> BatchResult:
        """Extras' "Batch from directory": upscale every image of a server folder."""
        policy = folder_policy(self.settings, self.outputs.folder(user))
        return run_extras_folder(self.run, policy, values, input_dir, output_dir, progress)
