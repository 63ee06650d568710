"""The one input type of every mode: a frozen GenerationRequest.

No torch, no gradio here. Field names follow AUTOMATIC1111's API where one exists, so the
same JSON serves the UI, the HTTP API, the CLI, extensions and the PNG's `studio` chunk.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any, Collection, Mapping

from PIL import Image

from studio.errors import RequestError, check_int, check_number, check_text, check_type
from studio.images import decode_image, encode_image, to_mask

MIN_SIZE, MAX_SIZE = 64, 2048
MAX_STEPS = 150
MAX_CFG = 30.0
MAX_BATCH_SIZE = 8
MAX_BATCH_COUNT = 100
MAX_SEED = 2**32 - 1
MAX_CACHE_INTERVAL = 5
MAX_MASK_BLUR = 64
MAX_PADDING = 256
MAX_CLIP_SKIP = 12
MAX_PROMPT_CHARS = 20_000
# What one job may produce: keeps a response (and its base64) within memory.
MAX_TOTAL_IMAGES = 100
MAX_TOTAL_PIXELS = 2**26  # e.g. 64 images of 1024x1024, or 16 of 2048x2048
INPAINTING_FILLS = ("fill", "original", "latent noise", "latent nothing")
# How the outpainted area starts: edge pixels stretched, noise around the image's colours, or A1111's
# "fill" (blurred colours of the surroundings: the default of A1111's outpainting scripts).
OUTPAINT_FILLS = ("stretch", "noise", "fill")
MAX_HR_SCALE = 4.0
MAX_OUTPAINT = 512
IMAGE_FIELDS = ("init_image", "mask")
RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")

CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
CONTROL_RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
MAX_CONTROL_UNITS = 10  # the ceiling of `control_net_unit_count` (sd-webui-controlnet's slider); admission checks the setting
DEFAULT_CONTROL_UNITS = 3
MAX_THRESHOLD = 10_000.0  # preprocessor parameters: finite, within any detector's range


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet unit, named as sd-webui-controlnet's API names its fields."""

    enabled: bool = True
    control_type: str = "canny"  # which ControlNet family: canny, scribble, pose (+ extensions)
    image: Image.Image | None = None  # None in img2img/inpaint: use the source image
    module: str = "none"  # preprocessor run on `image` ("none" = the image is the control)
    threshold_a: float = 100.0  # preprocessor parameters (canny: low threshold)
    threshold_b: float = 200.0  # (canny: high threshold)
    model: str | None = None  # None: the first ControlNet of this type for the loaded model
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: int = 0  # index into CONTROL_MODES
    resize_mode: int = 1  # index into CONTROL_RESIZE_MODES ("Crop and Resize", their default)
    pixel_perfect: bool = False  # preprocess at the generation size instead of the image's own
    mask: Image.Image | None = None  # inpaint_only's area to repaint (white); None: the inpaint mask, if any

    def validate(self, index: int, has_source: bool) -> None:
        where = f"ControlNet unit {index}"
        if self.image is None and not has_source:
            raise RequestError(f"{where}: give a control image (or use img2img/inpaint to use the source image)")
        for name in ("image", "mask"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), Image.Image):
                raise RequestError(f"{where}: {name} must be an image")
        check_number(f"{where} weight", self.weight, 0.0, 2.0)
        for name in ("threshold_a", "threshold_b"):
            check_number(f"{where} {name}", getattr(self, name), -MAX_THRESHOLD, MAX_THRESHOLD)
        check_number(f"{where} guidance_start", self.guidance_start, 0.0, 1.0)
        check_number(f"{where} guidance_end", self.guidance_end, 0.0, 1.0)
        if self.guidance_start >= self.guidance_end:
            raise RequestError(f"{where}: guidance_start must be below guidance_end")
        check_type(f"{where} pixel_perfect", self.pixel_perfect, bool)
        check_int(f"{where} control_mode", self.control_mode, 0, len(CONTROL_MODES) - 1)
        check_int(f"{where} resize_mode", self.resize_mode, 0, len(CONTROL_RESIZE_MODES) - 1)

    def to_dict(self, images: bool = True) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("image", "mask"):
            value = getattr(self, name)
            data[name] = encode_image(value) if images and value is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ControlUnit":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("image", "mask"):
            if isinstance(values.get(name), str):
                values[name] = decode_image(values[name], f"ControlNet {name}")
        return cls(**values)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    sampler_name: str = "Euler a"
    # A1111's "Schedule type" (its API field name): Automatic, Uniform, Karras, Exponential, ...
    scheduler: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    # None means "the model's native size"; the engine records the size it used.
    width: int | None = None
    height: int | None = None
    # -1 draws a random seed; the engine records the seed it used.
    seed: int = -1
    # A1111's variation seed: each image's noise is slerped towards its variation seed's noise by
    # subseed_strength (0 = off; -1 draws one); seed_resize_from_w/h > 0 draw the seed's noise at
    # that size and paste it centred ("resize seed from width/height").
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_w: int = -1
    seed_resize_from_h: int = -1
    batch_size: int = 1
    n_iter: int = 1
    # None means the model that is loaded (the embedded default when nothing else is).
    model: str | None = None
    # img2img: given an init image. Strength s runs the last floor(s * steps) steps.
    init_image: Image.Image | None = None
    denoising_strength: float = 0.75
    resize_mode: int = 0  # 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale
    # inpaint: init image plus mask (white = repaint).
    mask: Image.Image | None = None
    mask_blur: int = 4
    inpainting_fill: int = 1  # index into INPAINTING_FILLS; A1111's UI default is "original"
    inpaint_full_res: bool = False  # "Only masked"
    inpaint_full_res_padding: int = 32
    inpainting_mask_invert: bool = False
    # ControlNet units (usable in every mode).
    controlnet_units: tuple[ControlUnit, ...] = ()
    # Step caching (DeepCache): the UNet's deep blocks run every `cache_interval` steps and their
    # cached output is reused in between. 1 = off; 2 or 3 trade a little detail for speed.
    cache_interval: int = 1
    # A1111's "Clip skip" (CLIP_stop_at_last_layers): 1 = the text encoder's last layer, 2 = the one
    # before it (diffusers' clip_skip=1), ...
    clip_skip: int = 1
    # A1111's token merging (tomesd): the share of self-attention tokens merged, 0 = off (bit-identical);
    # and "Negative Guidance minimum sigma" (NGMS): below this sigma the unconditional pass is skipped
    # on every other step, 0 = never (studio/generation/speedups.py).
    token_merging_ratio: float = 0.0
    s_min_uncond: float = 0.0
    # A1111's eta: DDIM's (default 0) / ancestral and SDE samplers' (1) noise; None: the option's (generation/eta.py)
    eta: float | None = None
    # Style names from styles.csv. The generation service expands them into the two prompts and keeps the
    # names here as a record (the engine never expands them: a saved recipe has them expanded).
    styles: tuple[str, ...] = ()
    # VAE from models/VAE by name; "Automatic" is the model's own; None: the studio's selected VAE
    # (A1111's sd_vae option). The engine records the one it used.
    vae: str | None = None
    # txt2img hires fix (A1111's names): a second, img2img pass at the upscaled size with
    # denoising_strength. hr_resize_x/y 0: scale by hr_scale; steps 0: the same steps;
    # empty hr prompt/negative/sampler: the first pass's.
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = 0
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    hr_sampler_name: str = ""
    # img2img/inpaint outpainting: extend the canvas by this many pixels on each side, start the
    # new area from OUTPAINT_FILLS[outpaint_fill] and repaint it (with a mask_blur seam).
    outpaint_left: int = 0
    outpaint_right: int = 0
    outpaint_up: int = 0
    outpaint_down: int = 0
    outpaint_fill: int = 2
    # SDXL refiner (A1111 >= 1.6): a second SDXL model from models/Stable-diffusion takes over the
    # last (1 - refiner_switch_at) of the denoising (diffusers' denoising_end / denoising_start).
    # None or "" (or A1111's "None"): no refiner. The engine records the title it used.
    refiner_checkpoint: str | None = None
    refiner_switch_at: float = 0.8
    # A1111's "Restore faces": faces through face_restoration_model ("" = the option's) at CodeFormer's weight.
    restore_faces: bool = False
    face_restoration_model: str = ""
    code_former_weight: float = 0.5

    @property
    def mode(self) -> str:
        if self.init_image is None:
            return "txt2img"
        return "inpaint" if self.mask is not None or self.outpainting else "img2img"

    @property
    def outpainting(self) -> bool:
        return any((self.outpaint_left, self.outpaint_right, self.outpaint_up, self.outpaint_down))

    def outpaint_canvas(self) -> tuple[int, int]:
        """The outpainted output's size: the init image grown by the pads (the file's size, its `Size:`)."""
        width, height = self.init_image.size
        return (width + self.outpaint_left + self.outpaint_right, height + self.outpaint_up + self.outpaint_down)

    def hires_size(self) -> tuple[int, int]:
        """The second pass's size (width/height resolved): hr_resize_x/y when given (one of them
        alone keeps the aspect ratio), else hr_scale times the size; rounded down to 8."""
        width, height = int(self.width), int(self.height)
        if self.hr_resize_x or self.hr_resize_y:
            x = self.hr_resize_x or self.hr_resize_y * width / height
            y = self.hr_resize_y or self.hr_resize_x * height / width
            return int(x) // 8 * 8, int(y) // 8 * 8
        return int(width * self.hr_scale) // 8 * 8, int(height * self.hr_scale) // 8 * 8

    def replace(self, **changes: Any) -> "GenerationRequest":
        return dataclasses.replace(self, **changes)

    def validate(
        self,
        samplers: Collection[str] | None = None,
        models: Collection[str] | None = None,
    ) -> "GenerationRequest":
        """Raise RequestError for the first invalid field; return self when all are valid."""
        check_text("prompt", self.prompt, MAX_PROMPT_CHARS)
        check_text("negative_prompt", self.negative_prompt, MAX_PROMPT_CHARS)
        check_text("sampler_name", self.sampler_name, 200)
        if samplers is not None and self.sampler_name not in samplers:
            raise RequestError(
                f"unknown sampler {self.sampler_name!r}; choose one of: {', '.join(samplers)}"
            )
        check_type("scheduler", self.scheduler, str)
        check_int("steps", self.steps, 1, MAX_STEPS)
        check_number("cfg_scale", self.cfg_scale, 0.0, MAX_CFG)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is None:
                continue
            check_int(name, value, MIN_SIZE, MAX_SIZE)
            if value % 8:
                raise RequestError(f"{name} must be a multiple of 8 (got {value}; nearest: {_nearest8(value)})")
        check_int("seed", self.seed, -1, MAX_SEED)
        self._validate_variation()
        check_int("clip_skip", self.clip_skip, 1, MAX_CLIP_SKIP)
        if not isinstance(self.styles, tuple) or not all(isinstance(name, str) for name in self.styles):
            raise RequestError("styles must be a list of style names")
        self._validate_images()
        if self.vae is not None:
            check_type("vae", self.vae, str)
        self._validate_hires(samplers)
        self._validate_outpaint()
        self._validate_refiner()
        check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_int("n_iter", self.n_iter, 1, MAX_BATCH_COUNT)
        check_int("cache_interval", self.cache_interval, 1, MAX_CACHE_INTERVAL)
        for name, low, high in (("token_merging_ratio", 0.0, 0.9), ("s_min_uncond", 0.0, 100.0),
                                ("code_former_weight", 0.0, 1.0)):
            check_number(name, getattr(self, name), low, high)
        for name, kind in (("restore_faces", bool), ("face_restoration_model", str)):
            check_type(name, getattr(self, name), kind)
        if self.eta is not None:
            check_number("eta", self.eta, 0.0, 1.0)
        self._validate_totals()
        if self.model is not None:
            check_text("model", self.model, 500)
            if models is not None and self.model not in models:
                raise RequestError(f"unknown model {self.model!r}; see `python -m studio models`")
        return self

    def _validate_variation(self) -> None:
        check_int("subseed", self.subseed, -1, MAX_SEED)
        check_number("subseed_strength", self.subseed_strength, 0.0, 1.0)
        for name in ("seed_resize_from_w", "seed_resize_from_h"):
            value = getattr(self, name)
            check_int(name, value, -1, MAX_SIZE)
            if 0 < value < 8:  # at least one latent pixel
                raise RequestError(f"{name} must be 0 (off) or at least 8 (got {value})")

    def _validate_totals(self) -> None:
        count = self.batch_size * self.n_iter
        if count > MAX_TOTAL_IMAGES:
            raise RequestError(f"batch_size x n_iter must be at most {MAX_TOTAL_IMAGES} images (got {count})")
        if self.width and self.height and count * self.width * self.height > MAX_TOTAL_PIXELS:
            raise RequestError(f"{count} images of {self.width}x{self.height} are too many pixels for one job "
                               f"(at most {MAX_TOTAL_PIXELS // 2**20} megapixels): lower batch_size or n_iter")

    def _validate_images(self) -> None:
        for name in IMAGE_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Image.Image):
                raise RequestError(f"{name} must be an image")
        if self.mask is not None and self.init_image is None:
            raise RequestError("a mask needs an init image to inpaint")
        check_number("denoising_strength", self.denoising_strength, 0.0, 1.0)
        check_int("resize_mode", self.resize_mode, 0, 3)
        check_int("mask_blur", self.mask_blur, 0, MAX_MASK_BLUR)
        check_int("inpainting_fill", self.inpainting_fill, 0, len(INPAINTING_FILLS) - 1)
        check_int("inpaint_full_res_padding", self.inpaint_full_res_padding, 0, MAX_PADDING)
        for name in ("inpaint_full_res", "inpainting_mask_invert"):
            check_type(name, getattr(self, name), bool)
        if self.mask is not None and not self.outpainting \
                and to_mask(self.mask, self.inpainting_mask_invert).getbbox() is None:
            raise RequestError("the mask is empty after thresholding at 50% grey (white = repaint): paint where "
                               "to repaint, or upload a mask" + (" (mask mode inverts it)" if self.inpainting_mask_invert else ""))
        if len(self.controlnet_units) > MAX_CONTROL_UNITS:
            raise RequestError(f"at most {MAX_CONTROL_UNITS} ControlNet units")
        for index, unit in enumerate(self.controlnet_units):
            if not isinstance(unit, ControlUnit):
                raise RequestError(f"ControlNet unit {index} is not a ControlNet unit")
            check_type(f"ControlNet unit {index} enabled", unit.enabled, bool)
            if unit.enabled:
                unit.validate(index, has_source=self.init_image is not None)

    def _validate_hires(self, samplers: Collection[str] | None) -> None:
        check_type("enable_hr", self.enable_hr, bool)
        for name in ("hr_upscaler", "hr_prompt", "hr_negative_prompt", "hr_sampler_name"):
            check_type(name, getattr(self, name), str)
        check_number("hr_scale", self.hr_scale, 1.0, MAX_HR_SCALE)
        check_int("hr_second_pass_steps", self.hr_second_pass_steps, 0, MAX_STEPS)
        for name in ("hr_resize_x", "hr_resize_y"):
            check_int(name, getattr(self, name), 0, MAX_SIZE)
            if getattr(self, name) % 8:
                raise RequestError(f"{name} must be a multiple of 8 (got {getattr(self, name)}; "
                                   f"nearest: {_nearest8(getattr(self, name))})")
        if self.hr_sampler_name and samplers is not None and self.hr_sampler_name not in samplers:
            raise RequestError(f"unknown hr_sampler_name {self.hr_sampler_name!r}; choose one of: {', '.join(samplers)}")
        if not self.enable_hr:
            return
        if self.init_image is not None:
            raise RequestError("enable_hr (hires. fix) is for txt2img; img2img already works at the size you give")
        if self.width is not None and self.height is not None:
            for name, value in zip(("hires width", "hires height"), self.hires_size()):
                if not MIN_SIZE <= value <= MAX_SIZE:
                    raise RequestError(f"{name} must be between {MIN_SIZE} and {MAX_SIZE} (got {value}); "
                                       "lower hr_scale or hr_resize_x/hr_resize_y")

    def _validate_outpaint(self) -> None:
        for name in ("outpaint_left", "outpaint_right", "outpaint_up", "outpaint_down"):
            check_int(name, getattr(self, name), 0, MAX_OUTPAINT)
        check_int("outpaint_fill", self.outpaint_fill, 0, len(OUTPAINT_FILLS) - 1)
        if self.outpainting and self.init_image is None:
            raise RequestError("outpainting needs an init image to extend")

    @property
    def uses_refiner(self) -> bool:
        return bool(self.refiner_checkpoint) and self.refiner_checkpoint != "None"

    def _validate_refiner(self) -> None:
        if self.refiner_checkpoint is not None:
            check_text("refiner_checkpoint", self.refiner_checkpoint, 500)
        check_number("refiner_switch_at", self.refiner_switch_at, 0.0, 1.0)
        if not self.uses_refiner:
            return
        if not 0.0 < self.refiner_switch_at < 1.0:
            raise RequestError(f"refiner_switch_at must be above 0 and below 1 with a refiner "
                               f"(got {self.refiner_switch_at:g}): the base model runs that fraction of the steps")
        if self.mode == "inpaint":
            raise RequestError("refiner_checkpoint (SDXL refiner) works in txt2img and img2img, not inpaint yet")
        if any(unit.enabled for unit in self.controlnet_units):
            raise RequestError("refiner_checkpoint (SDXL refiner) with ControlNet units is not supported yet")
        if self.enable_hr:
            raise RequestError("refiner_checkpoint (SDXL refiner) with enable_hr (hires. fix) is not supported yet")

    def to_dict(self, images: bool = True) -> dict[str, Any]:
        """Plain JSON-able fields; images as PNG data URLs (or left out with images=False)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in IMAGE_FIELDS:
            data[name] = encode_image(data[name]) if images and data[name] is not None else None
        data["controlnet_units"] = [unit.to_dict(images) for unit in self.controlnet_units]
        data["styles"] = list(self.styles)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GenerationRequest":
        """Build from a mapping; unknown keys are ignored (as A1111's API ignores them)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in IMAGE_FIELDS:
            if isinstance(values.get(name), str):
                values[name] = decode_image(values[name], name)
        if isinstance(values.get("styles"), (list, tuple)):
            values["styles"] = tuple(values["styles"])
        if "controlnet_units" in values:
            values["controlnet_units"] = tuple(
                u if isinstance(u, ControlUnit) else ControlUnit.from_dict(u) for u in values["controlnet_units"] or ()
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "GenerationRequest":
        return cls.from_dict(json.loads(text))


def request_fields() -> tuple[dataclasses.Field, ...]:
    return fields(GenerationRequest)


def _nearest8(value: int) -> int:
    return max(MIN_SIZE, min(MAX_SIZE, int(round(value / 8)) * 8))
