"""What each image records: its A1111 infotext and the studio recipe (the PNG's `studio` chunk) that
regenerates it, built from the run that made it."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from PIL import Image

from studio import __version__
from studio.generation.passes import refiner
from studio.generation.results import GeneratedImage, RunResult
from studio.records import infotext
from studio.request import GenerationRequest


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
    if item.partial:  # an Interrupt stopped it: the picture at that step, not the finished image
        params["Interrupted"] = f"at step {item.partial}"
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


COMPANIONS = {"init_image": "init", "mask": "mask"}


def companion_images(result: RunResult) -> dict[str, Image.Image]:
    """Inputs a run needs to be repeated go beside the output: <name>-init.png, <name>-mask.png,
    and the control image each ControlNet unit used, <name>-control-<i>.png."""
    images = {suffix: getattr(result.request, name) for name, suffix in COMPANIONS.items()}
    images.update({f"control-{index}": image for index, image in enumerate(result.controls.images)})
    return {suffix: image for suffix, image in images.items() if image is not None}


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
