"""The Extras request: upscale finished images with one upscaler, or two blended (A1111's "Upscaler 2
visibility"); checked here, run by extras.py. Fields carry A1111's /sdapi/v1/extra-* names. Face
restoration follows the upscale as in A1111 (GFPGAN, then CodeFormer, each blended by its visibility);
a restorer whose files are absent is refused with the file to place, never ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from PIL import Image

from studio.checkpoints.upscaler_files import missing_reason
from studio.errors import check_int, check_number, check_type
from studio.request import MAX_SIZE, RequestError

RESIZE_MODES = ("Scale by", "Scale to")
MAX_EXTRAS_SCALE = 8.0
MAX_EXTRAS_SIZE = 8192

# (restorer name) -> why it cannot run here, or None (studio.checkpoints.face_files.missing_reason)
FaceCheck = Callable[[str], "str | None"]
# Extras' fields -> the restorer each one runs
FACE_FIELDS = {"gfpgan_visibility": "GFPGAN", "codeformer_visibility": "CodeFormer"}


@dataclass(frozen=True)
class ExtrasRequest:
    resize_mode: int = 0  # 0: scale by upscaling_resize; 1: to upscaling_resize_w x upscaling_resize_h
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True  # "scale to": crop to the exact aspect instead of stretching
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = 0.0
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExtrasRequest":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    def validate(self, upscaler_names: list[str], face_missing: FaceCheck | None = None) -> "ExtrasRequest":
        check_int("resize_mode", self.resize_mode, 0, 1)
        check_number("upscaling_resize", self.upscaling_resize, 1.0, MAX_EXTRAS_SCALE)
        check_int("upscaling_resize_w", self.upscaling_resize_w, 1, MAX_EXTRAS_SIZE)
        check_int("upscaling_resize_h", self.upscaling_resize_h, 1, MAX_EXTRAS_SIZE)
        check_type("upscaling_crop", self.upscaling_crop, bool)
        for name in ("upscaler_1", "upscaler_2"):
            value = getattr(self, name)
            check_type(name, value, str)
            if value not in upscaler_names:
                reason = missing_reason(value)
                if reason is not None:
                    raise RequestError(f"{name}: {reason}")
                raise RequestError(f"unknown {name} {value!r}; choose one of: {', '.join(upscaler_names)}")
        check_number("extras_upscaler_2_visibility", self.extras_upscaler_2_visibility, 0.0, 1.0)
        for name in ("gfpgan_visibility", "codeformer_visibility", "codeformer_weight"):
            check_number(name, getattr(self, name), 0.0, 1.0)
        for name, restorer in FACE_FIELDS.items():
            reason = face_missing(restorer) if face_missing is not None and getattr(self, name) > 0 else None
            if reason is not None:
                raise RequestError(f"{name}: {reason}")
        return self

    @property
    def upscales(self) -> bool:
        return self.upscaler_1 != "None" or (self.upscaler_2 != "None" and self.extras_upscaler_2_visibility > 0)

    def target_size(self, image: Image.Image) -> tuple[int, int]:
        return self.target_size_of(image.width, image.height)

    def target_size_of(self, width: int, height: int) -> tuple[int, int]:
        """The output size for an input of this size (admission knows sizes from headers only)."""
        if self.resize_mode == 1:
            return self.upscaling_resize_w, self.upscaling_resize_h
        return round(width * self.upscaling_resize), round(height * self.upscaling_resize)

    def info(self) -> str:
        """What was done, in A1111's "Postprocess upscale by" wording."""
        parts = []
        if self.resize_mode == 1:
            parts.append(f"Postprocess upscale to: {self.upscaling_resize_w}x{self.upscaling_resize_h}")
        else:
            parts.append(f"Postprocess upscale by: {self.upscaling_resize:g}")
        parts.append(f"Postprocess upscaler: {self.upscaler_1}")
        if self.upscaler_2 != "None" and self.extras_upscaler_2_visibility > 0:
            parts.append(f"Postprocess upscaler 2: {self.upscaler_2}")
            parts.append(f"Postprocess upscaler 2 visibility: {self.extras_upscaler_2_visibility:g}")
        if self.gfpgan_visibility > 0:
            parts.append(f"GFPGAN visibility: {round(self.gfpgan_visibility, 3):g}")
        if self.codeformer_visibility > 0:
            parts.append(f"CodeFormer visibility: {round(self.codeformer_visibility, 3):g}")
            parts.append(f"CodeFormer weight: {round(self.codeformer_weight, 3):g}")
        return ", ".join(parts)


def check_size(image: Image.Image, name: str = "image") -> None:
    if image.width > MAX_SIZE * 4 or image.height > MAX_SIZE * 4:
        raise RequestError(f"{name} is too large ({image.width}x{image.height})")
