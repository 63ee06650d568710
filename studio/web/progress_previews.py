"""/progress previews made off the request path: the latent preview (a torch decode, a VAE decode with
`preview=vae`) and its PNG encoding run on this route's own thread, never on AnyIO's pool that heavy
routes can fill, and each step's preview is made once however many callers poll (issue 22: /progress
stays answerable under any load)."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Hashable

from studio.web.responses import encode_png

if TYPE_CHECKING:
    from studio.service.generation_base import GenerationService
    from studio.service.queue import Job

KEPT = 8  # recent previews kept: one per running job and method is enough with --threads 1


class Previews:
    def __init__(self, generation: "GenerationService") -> None:
        self.generation = generation
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress-preview")
        self.made: dict[Hashable, "asyncio.Future[str | None]"] = {}  # in order made, newest last

    async def encoded(self, method: str, job: "Job | None", progress: Any) -> str | None:
        """The base64 PNG of the preview at `progress`'s step (None: no latents to show yet)."""
        key = (id(job), id(progress), getattr(progress, "step", 0), getattr(progress, "image", 0), method)
        found = self.made.get(key)
        if found is None:
            loop = asyncio.get_running_loop()
            found = asyncio.ensure_future(loop.run_in_executor(self.pool, self._make, method, job))
            self.made[key] = found
            while len(self.made) > KEPT:
                self.made.pop(next(iter(self.made)))
        try:
            return await asyncio.shield(found)  # a caller that leaves does not cancel the others' preview
        except Exception:  # noqa: BLE001 - a preview that cannot be made leaves the report without one
            self.made.pop(key, None)
            return None

    def _make(self, method: str, job: "Job | None") -> str | None:
        image = self.generation.preview(method, job) if job is not None else self.generation.preview(method)
        return encode_png(image) if image is not None else None
