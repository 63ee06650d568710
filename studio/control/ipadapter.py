"""IP-Adapter (image prompt) units through diffusers' load_ip_adapter, from local files only.

The adapter is a .safetensors file (image_proj.* and ip_adapter.* keys, as diffusers and h94 ship
them) in models/ControlNet/ or models/ipadapter/ (where A1111's extension and Forge keep them); its
CLIP image encoder is a transformers folder (config.json + weights) in models/clip_vision/<name>/,
or image_encoder/ beside the adapter. Loaded for the pass that uses it and taken out afterwards, so
a run without it is exactly a run of the bare model.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from PIL import Image

from studio.errors import ModelError, RequestError

ENCODER_HINT = ("an IP-Adapter needs its CLIP image encoder: a transformers CLIPVisionModelWithProjection folder "
                "(config.json and model.safetensors) in models/clip_vision/<name>/ or image_encoder/ beside the adapter")


def image_encoder_dir(models_dir: Path, adapter: Path) -> Path:
    """The image encoder folder for `adapter`: image_encoder/ beside it, else the first of models/clip_vision/."""
    candidates = [adapter.parent / "image_encoder"]
    clip_vision = models_dir / "clip_vision"
    if clip_vision.is_dir():
        candidates += sorted(path for path in clip_vision.iterdir() if path.is_dir())
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder
    raise ModelError(f"{adapter.name}: {ENCODER_HINT} (found none)")


@contextmanager
def ip_adapters(pipe: Any, adapters: Sequence[Path], encoder: Path, scales: Sequence[float]) -> Iterator[None]:
    """The pipeline with these adapters loaded at these scales (its UNet's processors restored after)."""
    if not adapters:
        yield
        return
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    unet = pipe.unet
    processors, extractor = unet.attn_processors, getattr(pipe, "feature_extractor", None)
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(str(encoder), local_files_only=True, dtype=unet.dtype)
    except (OSError, ValueError) as error:
        raise ModelError(f"could not load the image encoder in {encoder}: {str(error).splitlines()[0]}") from error
    size = model.config.image_size
    pipe.register_modules(image_encoder=model.to(unet.device),
                          feature_extractor=CLIPImageProcessor(size=size, crop_size=size))
    try:
        try:
            pipe.load_ip_adapter([str(path.parent) for path in adapters], subfolder=[""] * len(adapters),
                                 weight_name=[path.name for path in adapters], image_encoder_folder=None,
                                 local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            raise RequestError(f"IP-Adapter {', '.join(p.name for p in adapters)} does not fit this model: "
                               f"{str(error).splitlines()[0][:300]}") from error
        pipe.set_ip_adapter_scale(list(scales))
        yield
    finally:
        if getattr(unet, "encoder_hid_proj", None) is not None:
            pipe.unload_ip_adapter()
        unet.set_attn_processor(processors)
        pipe.register_modules(image_encoder=None, feature_extractor=extractor)


def adapter_images(images: Sequence[Image.Image]) -> list[Image.Image]:
    """The pipeline's ip_adapter_image: one image per adapter, RGB."""
    return [image.convert("RGB") for image in images]
