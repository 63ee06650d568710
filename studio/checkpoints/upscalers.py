"""Running upscalers: latent resizes for hires fix, and model files through spandrel, tiled with
overlap (feathered blending) so large images fit in memory. Names and files: upscaler_files.py."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from studio.checkpoints.upscaler_files import LATENT_UPSCALERS, PIXEL_UPSCALERS, UpscalerEntry, discover, missing_reason
from studio.errors import ModelError
from studio.request import RequestError

TILE, OVERLAP = 192, 16  # input pixels per tile and overlap between tiles (A1111's ESRGAN defaults: 192, 8)
MAX_LOADED = 2


def upscale_latents(latents: torch.Tensor, width: int, height: int, name: str, scale_factor: int = 8) -> torch.Tensor:
    mode, antialias = LATENT_UPSCALERS[name]
    size = (height // scale_factor, width // scale_factor)
    if mode.startswith("nearest"):
        return F.interpolate(latents, size=size, mode=mode)
    return F.interpolate(latents, size=size, mode=mode, antialias=antialias, align_corners=False)


def load_model_file(path: Path, device: torch.device | str = "cpu") -> Any:
    """A spandrel ImageModelDescriptor from a .safetensors or weights-only .pth file."""
    import spandrel  # imported on first use: the app starts without touching it

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unreadable, truncated, or a pickle that would run code
        raise ModelError(f"cannot read upscaler {path.name}: {str(error).splitlines()[0][:200]} "
                         "(.pth files are read weights-only; re-save it as .safetensors)") from error
    try:
        descriptor = spandrel.ModelLoader(device).load_from_state_dict(spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError as error:
        raise ModelError(f"{path.name}: spandrel does not recognise this upscaler's architecture") from error
    except Exception as error:
        raise ModelError(f"{path.name}: cannot build the upscaler ({str(error).splitlines()[0][:200]})") from error
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelError(f"{path.name} is a {descriptor.architecture.name} model, not an upscaler")
    channels = (getattr(descriptor, "input_channels", 3), getattr(descriptor, "output_channels", 3))
    if channels != (3, 3):  # a 5-channel first conv would fail on the first RGB tile
        raise ModelError(f"{path.name} takes {channels[0]} and gives {channels[1]} channels; an upscaler here "
                         "must take and give RGB (3 channels)")
    return descriptor.eval()


def run_tiled(descriptor: Any, image: Image.Image, tile: int = TILE, overlap: int = OVERLAP) -> Image.Image:
    """The model over `image` in overlapping tiles, blended with linear ramps in the overlaps."""
    scale = int(descriptor.scale)
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    _, _, height, width = pixels.shape
    out = torch.zeros((3, height * scale, width * scale))
    weight = torch.zeros((1, height * scale, width * scale))
    with torch.inference_mode():
        for top in _starts(height, tile, overlap):
            for left in _starts(width, tile, overlap):
                bottom, right = min(height, top + tile), min(width, left + tile)
                piece = _apply(descriptor, pixels[:, :, top:bottom, left:right])
                ramp = _ramp(top, bottom, height, overlap, scale)[:, None] * _ramp(left, right, width, overlap, scale)[None]
                out[:, top * scale:bottom * scale, left * scale:right * scale] += piece * ramp
                weight[:, top * scale:bottom * scale, left * scale:right * scale] += ramp
    result = (out / weight).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(result, mode="RGB")


def _apply(descriptor: Any, tile: torch.Tensor) -> torch.Tensor:
    """One tile through the model, padded to what the architecture needs and cropped back."""
    _, _, h, w = tile.shape
    pad_w, pad_h = descriptor.size_requirements.get_padding(w, h)
    if pad_w or pad_h:
        tile = F.pad(tile, (0, pad_w, 0, pad_h), mode="replicate")
    result = descriptor(tile.to(device=descriptor.device, dtype=descriptor.dtype)).float().cpu()[0]
    scale = int(descriptor.scale)
    return result[:, : h * scale, : w * scale]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(start: int, end: int, length: int, overlap: int, scale: int) -> torch.Tensor:
    """Weights along one axis of a tile: rising over the overlap at inner edges, 1 elsewhere."""
    size, fade = (end - start) * scale, min(overlap * scale, (end - start) * scale // 2)
    ramp = torch.ones(size)
    if fade:
        rising = (torch.arange(fade, dtype=torch.float32) + 0.5) / fade
        if start > 0:
            ramp[:fade] = rising
        if end < length:
            ramp[-fade:] = rising.flip(0)
    return ramp


class Upscalers:
    """Discovery and a small cache of loaded model upscalers (held by the engine, not global)."""

    def __init__(self, models_dir: Path, device: torch.device | str = "cpu") -> None:
        self.models_dir = models_dir
        self.device = device
        self._loaded: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def entries(self) -> dict[str, UpscalerEntry]:
        entries = discover(self.models_dir)
        for name, entry in entries.items():
            if entry.path in self._loaded:
                entries[name] = UpscalerEntry(entry.name, entry.kind, entry.path, entry.folder,
                                              int(self._loaded[entry.path].scale))
        return entries

    def names(self) -> list[str]:
        return list(self.entries())

    def get(self, name: str, field: str = "upscaler", allow_latent: bool = True) -> UpscalerEntry:
        entries = self.entries()
        allowed = [n for n, e in entries.items() if allow_latent or e.kind != "latent"]
        if name not in allowed:
            reason = missing_reason(name)
            if reason is not None:
                raise RequestError(f"{field}: {reason}")
            raise RequestError(f"unknown {field} {name!r}; choose one of: {', '.join(allowed)}")
        return entries[name]

    def model(self, entry: UpscalerEntry) -> Any:
        with self._lock:
            if entry.path not in self._loaded:
                while len(self._loaded) >= MAX_LOADED:
                    self._loaded.pop(next(iter(self._loaded)))
                self._loaded[entry.path] = load_model_file(entry.path, self.device)
            return self._loaded[entry.path]

    def upscale(self, image: Image.Image, name: str, width: int, height: int) -> Image.Image:
        """`image` upscaled by the named pixel or model upscaler to exactly width x height.
        A model is run as many times as needed to reach the size (as A1111 does), then the
        result is resized with Lanczos to the exact size."""
        entry = self.get(name, allow_latent=False)
        image = image.convert("RGB")
        if entry.kind == "model":
            descriptor = self.model(entry)
            for _ in range(3):  # e.g. a 2x model asked for 8x: three passes at most
                if image.width >= width and image.height >= height:
                    break
                image = run_tiled(descriptor, image)
        if image.size == (width, height):
            return image
        resample = PIXEL_UPSCALERS.get(name, Image.Resampling.LANCZOS)
        return image.resize((width, height), resample)
