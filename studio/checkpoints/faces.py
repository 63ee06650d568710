"""Face restoration as A1111 runs it: detect faces (RetinaFace, retinaface.py), crop each aligned to the
restorer's 512x512 (face_paste.py), restore it (GFPGAN, RestoreFormer through spandrel; CodeFormer through
spandrel_extra_arches), paste it back under a feathered mask. Files: face_files.py (models folder only).

Restorers are called as A1111 calls them: input in [-1, 1]; GFPGAN with `return_rgb=False`, CodeFormer
with its fidelity `weight` (A1111's code_former_weight) and `adain=True`. GFPGAN's StyleGAN noise is the
model's fixed noise (`randomize_noise=False`) so a seed reproduces its picture; A1111 draws it anew.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from studio.checkpoints.face_files import DETECTOR_FILE, detector_file, missing_reason, present, restorer_file
from studio.checkpoints.retinaface import Face, RetinaFace, detect, load_state
from studio.errors import ModelError
from studio.request import RequestError

MAX_LOADED = 2


def _read_state(path: Path) -> dict[str, Any]:
    """A .safetensors file, or a .pth read by torch's weights-only unpickler (a pickle that runs code is refused)."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelError(f"cannot read {path.name}: {str(error).splitlines()[0][:200]} "
                         "(.pth files are read weights-only; re-save it as .safetensors)") from error


def restorer_registry() -> Any:
    """Only the face restorers' architectures (an upscaler in models/GFPGAN is not taken for one)."""
    import spandrel
    import spandrel_extra_arches  # MIT; its CodeFormer arch is under the S-Lab licence (non-commercial use)

    registry = spandrel.ArchRegistry()
    registry.add(spandrel.MAIN_REGISTRY.get("GFPGAN"), spandrel.MAIN_REGISTRY.get("RestoreFormer"),
                 spandrel_extra_arches.EXTRA_REGISTRY.get("CodeFormer"))
    return registry


def load_restorer(path: Path, name: str, device: torch.device | str = "cpu") -> Any:
    """The spandrel descriptor of a face restorer file, checked to be the named architecture."""
    import spandrel

    state = _read_state(path)
    try:
        descriptor = spandrel.ModelLoader(device, registry=restorer_registry()).load_from_state_dict(
            spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError as error:
        raise ModelError(f"{path.name}: not a GFPGAN, CodeFormer or RestoreFormer model") from error
    except Exception as error:
        raise ModelError(f"{path.name}: cannot build the face restorer ({str(error).splitlines()[0][:200]})") from error
    if descriptor.architecture.id != name:
        raise ModelError(f"{path.name} is a {descriptor.architecture.id} model, not {name}")
    return descriptor.eval()


def load_detector(path: Path, device: torch.device | str = "cpu") -> RetinaFace:
    try:
        return load_state(RetinaFace(), _read_state(path)).to(device)
    except (RuntimeError, KeyError) as error:
        raise ModelError(f"{path.name}: not facexlib's RetinaFace ResNet-50 weights "
                         f"({str(error).splitlines()[0][:200]})") from error


@torch.inference_mode()
def run_restorer(descriptor: Any, face: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """One aligned 512x512 RGB uint8 face through the restorer, as A1111 calls each architecture."""
    pixels = torch.from_numpy(face.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    pixels = pixels.to(device=descriptor.device, dtype=descriptor.dtype)
    model, kind = descriptor.model, descriptor.architecture.id
    if kind == "GFPGAN":
        out = model(pixels, return_rgb=False, randomize_noise=False)[0]
    elif kind == "CodeFormer":
        out = model(pixels, weight=weight, adain=True)[0]
    else:
        out = model(pixels)[0]
    out = ((out.float().clamp(-1, 1) + 1) * 127.5).round()
    return out[0].permute(1, 2, 0).byte().cpu().numpy()


def restore_faces(image: Image.Image, descriptor: Any, faces: list[Face], weight: float = 0.5) -> Image.Image:
    """Each face cropped aligned from the original, restored, and pasted back in turn."""
    from studio.checkpoints import face_paste  # OpenCV on first use: `python -m studio generate` never needs it

    original = np.asarray(image.convert("RGB"))
    result = original.copy()
    for face in faces:
        try:
            matrix = face_paste.alignment(face.landmarks)
        except ValueError:
            continue
        restored = run_restorer(descriptor, face_paste.crop(original, matrix), weight)
        result = face_paste.paste(result, restored, matrix)
    return Image.fromarray(result, mode="RGB")


class FaceRestorers:
    """The restorers of models/GFPGAN and models/Codeformer, loaded on first use and kept (held by the engine)."""

    def __init__(self, models_dir: Path, device: torch.device | str = "cpu", detect_size: int = 640) -> None:
        self.models_dir = models_dir
        self.device = device
        self.detect_size = detect_size  # the detection's shortest side (A1111: 640)
        self._loaded: dict[Path, Any] = {}
        self._detector: tuple[Path, RetinaFace] | None = None
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The restorers whose weights are in place."""
        return list(present(self.models_dir))

    def missing(self, name: str) -> str | None:
        """Why restorer `name` cannot run here (the file to place and where), None when it can."""
        return missing_reason(self.models_dir, name)

    def check(self, name: str, field: str) -> None:
        """Refuse (RequestError naming `field`) a restorer that cannot run: the file to place and where."""
        reason = self.missing(name)
        if reason is not None:
            raise RequestError(f"{field}: {reason}")

    def restorer(self, name: str) -> Any:
        self.check(name, "face restoration")
        path = restorer_file(self.models_dir, name)
        with self._lock:
            if path not in self._loaded:
                while len(self._loaded) >= MAX_LOADED:
                    self._loaded.pop(next(iter(self._loaded)))
                self._loaded[path] = load_restorer(path, name, self.device)
            return self._loaded[path]

    def detector(self) -> RetinaFace:
        path = detector_file(self.models_dir)
        if path is None:
            raise RequestError(f"face restoration needs the face detector {DETECTOR_FILE} (RetinaFace ResNet-50, "
                               f"from facexlib): place it in {self.models_dir / 'GFPGAN'}; nothing is downloaded")
        with self._lock:
            if self._detector is None or self._detector[0] != path:
                self._detector = (path, load_detector(path, self.device))
            return self._detector[1]

    def detect(self, image: Image.Image) -> list[Face]:
        return detect(self.detector(), image, resize=self.detect_size)

    def restore(self, image: Image.Image, name: str, weight: float = 0.5) -> Image.Image:
        """`image` with every face found restored by restorer `name` (CodeFormer's fidelity `weight`)."""
        descriptor = self.restorer(name)
        return restore_faces(image, descriptor, self.detect(image), weight)

    def blend(self, image: Image.Image, name: str, visibility: float, weight: float = 0.5) -> Image.Image:
        """Extras: the restored image blended over the input by `visibility` (A1111: 0 leaves it untouched)."""
        if visibility <= 0:
            return image
        restored = self.restore(image, name, weight)
        return restored if visibility >= 1 else Image.blend(image.convert("RGB"), restored, visibility)
