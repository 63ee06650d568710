"""From a request to saved PNGs: validate, run, write infotext and recipe, save.

The UI, the HTTP API and the CLI all call `generate`; nothing here knows about any of them.
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from PIL import Image

from studio import __version__
from studio.generation import refiner
from studio.generation.engine import Engine, GeneratedImage, RunResult, StepCallback
from studio.records import infotext, storage
from studio.request import GenerationRequest
from studio.settings import Settings


@dataclass(frozen=True)
class SavedImage:
    image: Image.Image
    path: Path | None
    infotext: str
    seed: int
    recipe: dict[str, Any]  # the PNG's `studio` chunk, also when the image is not saved

    def png_bytes(self) -> bytes:
        """The image as a PNG with both chunks, as it is (or would be) saved."""
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", pnginfo=storage.png_info(self.infotext, self.recipe))
        return buffer.getvalue()


@dataclass(frozen=True)
class JobResult:
    request: GenerationRequest
    images: list[SavedImage]
    interrupted: bool
    notices: tuple[str, ...] = ()  # e.g. an extension hook that failed (the job still ran)
    skipped: int = 0  # iterations dropped by Engine.skip()


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
) -> JobResult:
    """Run and save; `directory` overrides A1111's outputs/<mode>-images/<date>/ layout.
    `after_image` may change each image before it is saved; its infotext keys and `params`
    are added to the image's infotext (never replacing a core key). `image_prompts` gives each
    image its own prompt (recorded in its infotext and recipe, so Reproduce is exact). Each image
    is saved as soon as it is made: an interrupt or SIGTERM later in the run keeps it."""
    extras: dict[int, Mapping[str, Any]] = {}

    def prompts_for(index: int) -> tuple[str, str]:
        prompt, negative, extras[index] = image_prompts(index)  # type: ignore[misc]
        return prompt, negative

    folder = "txt2img" if request.mode == "txt2img" else "img2img"  # A1111's folders
    target = (directory or storage.output_dir(settings.outputs_dir, folder)) if save else None
    saved: list[SavedImage] = []

    def on_image(so_far: RunResult, item: GeneratedImage) -> None:
        saved.append(_finish_image(so_far, item, target, after_image, {**(params or {}), **extras.get(item.index, {})}))

    result = engine.run(request, on_step, prompts_for if image_prompts else None, on_image)
    return JobResult(_job_request(result), saved, result.interrupted, skipped=result.skipped)


def _job_request(result: RunResult) -> GenerationRequest:
    """The run's request; with the images' prompt when they all had the same one."""
    prompts = {item.prompts for item in result.images if item.prompts is not None}
    if len(prompts) == 1:
        prompt, negative = prompts.pop()
        return result.request.replace(prompt=prompt, negative_prompt=negative)
    return result.request


def image_request(result: RunResult, item: GeneratedImage) -> GenerationRequest:
    """The run's request as it made this image: its seed, its own prompt when it had one."""
    request = result.request.replace(seed=item.seed)
    if request.subseed_strength > 0:  # image i's variation seed is subseed + i, as its seed is seed + i
        request = request.replace(subseed=result.request.subseed + item.seed - result.request.seed)
    if item.prompts is not None:
        request = request.replace(prompt=item.prompts[0], negative_prompt=item.prompts[1])
    return request


def image_infotext(result: RunResult, item: GeneratedImage, extra: Mapping[str, Any] | None = None) -> str:
    request = image_request(result, item)
    params = infotext.request_params(request, result.model.entry.title, result.model.hash)
    params = infotext.with_networks(params, result.networks.infotext())
    for index, (unit, title) in enumerate(zip(result.controls.units, result.controls.titles)):
        params[f"ControlNet {index}"] = infotext.control_unit_text(unit, title)
    params.update(refiner.infotext(request, result.refiner))
    if request.batch_size > 1:
        params["Batch size"] = request.batch_size
        params["Batch pos"] = item.index % request.batch_size
    for key, value in (extra or {}).items():
        params.setdefault(key, value)
    params["Version"] = f"studio-{__version__}"
    return infotext.write_infotext(request.prompt, request.negative_prompt, params)


def recipe(result: RunResult, item: GeneratedImage) -> dict[str, Any]:
    """Everything needed to regenerate this exact image (the PNG's `studio` chunk). Input images
    are embedded (PNG, base64) so the file alone reproduces an img2img or inpaint result. With
    per-image prompts the request holds this image's prompt and `batch_prompts` those of its batch."""
    data: dict[str, Any] = {
        "request": image_request(result, item).replace(seed=result.request.seed,
                                                       subseed=result.request.subseed).to_dict(images=True),
        "index": item.index,
        "model_hash": result.model.hash,
        "networks": result.networks.recipe(),
        "refiner_hash": result.refiner.hash if result.refiner is not None else None,  # LoRA / embedding / VAE hashes: Reproduce warns when a file differs
        "scheduler_config": dict(result.model.pipe.scheduler.config),
        "versions": library_versions(),
        "torch_threads": torch.get_num_threads(),  # CPU results can differ in the last bit across thread counts
        "dtype": str(result.model.pipe.unet.dtype).removeprefix("torch."), "device": str(result.model.pipe.device),
    }
    if item.prompts is not None and result.request.batch_size > 1:
        first = item.index - item.index % result.request.batch_size
        data["batch_prompts"] = [list(other.prompts or ()) for other in result.images
                                 if first <= other.index < first + result.request.batch_size]
    return data


def library_versions() -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    return {"studio": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


def _finish_image(result: RunResult, item: GeneratedImage, directory: Path | None,
                  after_image: ImageHook | None = None, params: Mapping[str, Any] | None = None) -> SavedImage:
    extra = dict(params or {})
    if after_image is not None:
        image, added = after_image(item.image, image_request(result, item))
        item, extra = dataclasses.replace(item, image=image), {**extra, **added}
    text = image_infotext(result, item, extra)
    data = _jsonable(recipe(result, item))
    path = None
    if directory is not None:
        path = storage.save_png(item.image, directory, item.seed, text, data, companions=_inputs(result))
    return SavedImage(item.image, path, text, item.seed, data)


COMPANIONS = {"init_image": "init", "mask": "mask"}


def _inputs(result: RunResult) -> dict[str, Image.Image]:
    """Inputs a run needs to be repeated go beside the output: <name>-init.png, <name>-mask.png,
    and the control image each ControlNet unit used, <name>-control-<i>.png."""
    images = {suffix: getattr(result.request, name) for name, suffix in COMPANIONS.items()}
    images.update({f"control-{index}": image for index, image in enumerate(result.controls.images)})
    return {suffix: image for suffix, image in images.items() if image is not None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
