"""From ControlNet units to what the pipeline takes: control images, scales, guidance windows,
and sd-webui-controlnet's control modes (soft injection, CFG injection) as forward hooks."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from PIL import Image, ImageOps

from studio.control.preprocessors import PREPROCESSORS, AnnotatorDirs, PreprocessorSpec, run_preprocessor
from studio.request import ControlUnit

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL = range(3)
SOFT_INJECTION_BASE = 0.825  # sd-webui-controlnet: scale of residual i is base ** (n - 1 - i)


def fit_control(image: Image.Image, width: int, height: int, mode: int) -> Image.Image:
    """RGB (or RGBA: an inpaint control keeps its marked area; padding is marked too, as outpainting)."""
    image = image.convert("RGBA" if image.mode == "RGBA" else "RGB")
    if mode == JUST_RESIZE:
        return image.resize((width, height), Image.Resampling.LANCZOS)
    if mode == CROP_AND_RESIZE:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    fill = (0, 0, 0, 0) if image.mode == "RGBA" else (0, 0, 0)  # black: no control
    return ImageOps.pad(image, (width, height), Image.Resampling.LANCZOS, color=fill)


def control_image(unit: ControlUnit, source: Image.Image | None, width: int, height: int,
                  annotators_dir: AnnotatorDirs, registry: dict[str, PreprocessorSpec] = PREPROCESSORS,
                  mask: Image.Image | None = None) -> Image.Image:
    """The unit's image (or the mode's source image), preprocessed and fitted to the generation size.
    Pixel perfect preprocesses at the generation size, otherwise at the image's own size. `mask`:
    the inpaint mask at the generation size, for inpaint_only when the unit has no mask of its own."""
    image = unit.image if unit.image is not None else source
    if image is None:
        raise ValueError("ControlNet unit has no image")
    mask = unit.mask.resize(image.size) if unit.mask is not None else mask
    if unit.pixel_perfect:
        image = fit_control(image, width, height, unit.resize_mode)
    if mask is not None:  # the mask follows the image it marks
        mask = mask.convert("L").resize(image.size)
    processed = run_preprocessor(unit.module, image, unit.threshold_a, unit.threshold_b, annotators_dir, registry,
                                 mask=mask)
    return fit_control(processed, width, height, unit.resize_mode)


def _mode_hook(control_mode: int, cfg_active: bool):
    def hook(module: torch.nn.Module, args: tuple, output: tuple) -> tuple:
        downs, mid = output
        residuals = [*downs, mid]
        count = len(residuals)
        scaled = [r * (SOFT_INJECTION_BASE ** (count - 1 - i)) for i, r in enumerate(residuals)]
        if control_mode == 2 and cfg_active:
            # "ControlNet is more important": the unconditional half gets no control (CFG injection).
            scaled = [torch.cat([torch.zeros_like(r[: r.shape[0] // 2]), r[r.shape[0] // 2:]]) for r in scaled]
        return tuple(scaled[:-1]), scaled[-1]

    return hook


@contextmanager
def control_mode_hooks(nets: Sequence[torch.nn.Module], units: Sequence[ControlUnit], cfg_active: bool) -> Iterator[None]:
    """Balanced units run as diffusers runs them; the other two modes rescale residuals per unit."""
    handles = [net.register_forward_hook(_mode_hook(unit.control_mode, cfg_active))
               for net, unit in zip(nets, units) if unit.control_mode != 0]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
