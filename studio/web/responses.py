"""Response bodies: saved PNGs as base64 and A1111's `info` JSON (Processed.js())."""
from __future__ import annotations

import base64
import io
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from studio import __version__
from studio.records import storage
from studio.service.results import JobResult, SavedImage, time_taken
from studio.web.schemas import Img2ImgBody, Txt2ImgBody

if TYPE_CHECKING:
    from studio.service.container import Services


def encode_png(image: Image.Image, text: str | None = None) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=storage.png_info(text, None) if text is not None else None)
    return base64.b64encode(buffer.getvalue()).decode()


def encode_saved(saved: SavedImage) -> str:
    """A saved file is returned byte for byte (it also holds the `studio` recipe chunk)."""
    if saved.path is not None:
        return base64.b64encode(Path(saved.path).read_bytes()).decode()
    return base64.b64encode(saved.png_bytes()).decode()


def generation_info(result: JobResult, services: "Services", started: datetime,
                    styles: list[str] | None = None) -> dict[str, Any]:
    """Processed.js() of A1111, for the fields that exist here."""
    elapsed = (datetime.now() - started).total_seconds()
    request = result.request
    # The lists line up with the images returned: a skipped iteration's seeds are not among them.
    made = [saved for saved in result.images if not saved.grid]  # A1111's grid comes first, without a seed
    seeds = [saved.seed for saved in made]
    if not seeds or min(seeds) < 0:  # nothing made, or a script's grid (no seed of its own): the planned ones
        seeds = [request.seed + i for i in range(request.batch_size * request.n_iter)]
    offsets = [seed - request.seed for seed in seeds]
    loaded = services.models.facts()
    model_hash = loaded.hash if loaded is not None and loaded.entry.title == request.model else None
    own = [saved.recipe.get("request", {}) for saved in made]  # each image's prompt (dynamic prompts)
    whole = len(own) == len(seeds) and all("prompt" in r for r in own)
    return {
        "prompt": request.prompt,
        "all_prompts": [r["prompt"] for r in own] if whole else [request.prompt] * len(seeds),
        "negative_prompt": request.negative_prompt,
        "all_negative_prompts": ([r.get("negative_prompt", "") for r in own] if whole
                                 else [request.negative_prompt] * len(seeds)),
        "seed": seeds[0] if seeds else request.seed,
        "all_seeds": seeds,
        "subseed": request.subseed + offsets[0] if seeds and request.subseed >= 0 else request.subseed,
        "all_subseeds": [request.subseed + offset if request.subseed >= 0 else -1 for offset in offsets],
        "subseed_strength": request.subseed_strength,
        "width": request.width,
        "height": request.height,
        "sampler_name": request.sampler_name,
        "cfg_scale": request.cfg_scale,
        "steps": request.steps,
        "batch_size": request.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": request.model,
        "sd_model_hash": model_hash,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": request.seed_resize_from_w,
        "seed_resize_from_h": request.seed_resize_from_h,
        "denoising_strength": request.denoising_strength if request.mode != "txt2img" or request.enable_hr else None,
        "extra_generation_params": {},
        "index_of_first_image": len(result.images) - len(made),
        "infotexts": [saved.infotext for saved in result.images],
        "styles": styles or [],
        "job_timestamp": started.strftime("%Y%m%d%H%M%S"),
        "clip_skip": request.clip_skip,
        "is_using_inpainting_conditioning": False,
        "version": f"studio-{__version__}",
        "interrupted": result.interrupted,
        # A1111 shows "Time taken: …" under each job's results; the API gives the seconds and the line.
        "time_taken": round(elapsed, 3),
        "time_taken_text": time_taken(elapsed),
    }


def echo_parameters(body: Txt2ImgBody) -> dict[str, Any]:
    """A1111 echoes the request it understood (images left out unless include_init_images)."""
    data = body.model_dump()
    if isinstance(body, Img2ImgBody) and not body.include_init_images:
        data["init_images"], data["mask"] = None, None
    return data
