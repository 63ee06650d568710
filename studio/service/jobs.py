"""From a request to saved PNGs: validate, run, write infotext and recipe, save.

The UI, the HTTP API and the CLI all call `generate`; nothing here knows about any of them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

from PIL import Image

from studio.generation.engine import Engine
from studio.generation.results import GeneratedImage, RunResult, StepCallback
from studio.records import filenames, recipes, storage
from studio.request import GenerationRequest
from studio.service.results import JobResult, SavedImage
from studio.settings import Settings

# after_image hooks: (image, request with this image's seed) -> (image, extra infotext keys)
ImageHook = Callable[[Image.Image, GenerationRequest], "tuple[Image.Image, Mapping[str, Any]]"]
# per-image prompts: image index in the run -> (prompt, negative prompt, extra infotext keys of that image)
ImagePrompts = Callable[[int], "tuple[str, str, Mapping[str, Any]]"]


def generate(
    request: GenerationRequest,
    engine: Engine,
    settings: Settings,
    on_step: StepCallback | None = None,
    save: bool = True,
    directory: Path | None = None,
    after_image: ImageHook | None = None,
    params: Mapping[str, Any] | None = None,
    image_prompts: ImagePrompts | None = None,
    name_pattern: str = "",
) -> JobResult:
    """Run and save; `directory` overrides A1111's outputs/<mode>-images/<date>/ layout.
    `after_image` may change each image before it is saved; its infotext keys and `params`
    are added to the image's infotext (never replacing a core key). `image_prompts` gives each
    image its own prompt (recorded in its infotext and recipe, so Reproduce is exact). Each image
    is saved as soon as it is made: an interrupt or SIGTERM later in the run keeps it. `name_pattern`:
    A1111's samples_filename_pattern for the files' names (studio.records.filenames)."""
    extras: dict[int, Mapping[str, Any]] = {}

    def prompts_for(index: int) -> tuple[str, str]:
        prompt, negative, extras[index] = image_prompts(index)  # type: ignore[misc]
        return prompt, negative

    folder = "txt2img" if request.mode == "txt2img" else "img2img"  # A1111's folders
    target = (directory or storage.output_dir(settings.outputs_dir, folder)) if save else None
    saved: list[SavedImage] = []

    def on_image(so_far: RunResult, item: GeneratedImage) -> None:
        saved.append(_finish_image(so_far, item, target, after_image, {**(params or {}), **extras.get(item.index, {})},
                                    name_pattern))

    result = engine.run(request, on_step, prompts_for if image_prompts else None, on_image)
    return JobResult(_job_request(result), saved, result.interrupted, skipped=result.skipped)


def _job_request(result: RunResult) -> GenerationRequest:
    """The run's request; with the images' prompt when they all had the same one."""
    prompts = {item.prompts for item in result.images if item.prompts is not None}
    if len(prompts) == 1:
        prompt, negative = prompts.pop()
        return result.request.replace(prompt=prompt, negative_prompt=negative)
    return result.request


def _finish_image(result: RunResult, item: GeneratedImage, directory: Path | None,
                  after_image: ImageHook | None = None, params: Mapping[str, Any] | None = None,
                  name_pattern: str = "") -> SavedImage:
    extra = dict(params or {})
    if after_image is not None:
        image, added = after_image(item.image, recipes.image_request(result, item))
        item, extra = dataclasses.replace(item, image=image), {**extra, **added}
    text = recipes.image_infotext(result, item, extra)
    data = recipes.jsonable(recipes.recipe(result, item))
    path = None
    if directory is not None:
        name = filenames.decoration(name_pattern, recipes.image_request(result, item),
                                    Path(result.model.entry.title).stem) if name_pattern else None
        path = storage.save_png(item.image, directory, item.seed, text, data,
                                companions=recipes.companion_images(result), decoration=name)
    return SavedImage(item.image, path, text, item.seed, data, partial=item.partial)


