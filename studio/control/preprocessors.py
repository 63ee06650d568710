"""The preprocessor registry: sd-webui-controlnet's module names -> functions that turn an image
into a control image. Detectors that need downloaded weights are listed but unavailable (with the
reason) unless their weights sit under models/annotators/ — never a download attempt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, ImageOps

from studio.control import edges

# (image, threshold_a, threshold_b[, weights file]) -> control image
Preprocess = Callable[..., Image.Image]


@dataclass(frozen=True)
class PreprocessorSpec:
    run: Preprocess  # (image, threshold_a, threshold_b) -> control image (RGB, same size)
    control_type: str  # the ControlNet family it feeds
    threshold_a: str | None = None  # label of threshold_a in the UI, None when unused
    threshold_b: str | None = None
    weights: str | None = None  # file under models/annotators/ this detector needs

    def unavailable_reason(self, annotators_dir: Path) -> str | None:
        if self.weights is None or (annotators_dir / self.weights).is_file():
            return None
        return f"needs {self.weights} under {annotators_dir} (detector weights are never downloaded)"


def _none(image: Image.Image, a: float, b: float) -> Image.Image:
    return image.convert("RGB")


def _canny(image: Image.Image, low: float, high: float) -> Image.Image:
    return edges.canny(image, int(low), int(high))


def _scribble(image: Image.Image, a: float, b: float) -> Image.Image:
    return edges.scribble_from_image(image)


def _invert(image: Image.Image, a: float, b: float) -> Image.Image:
    """Black lines on white (a drawing) -> white on black, as scribble ControlNets expect."""
    return ImageOps.invert(image.convert("RGB"))


def _openpose(image: Image.Image, a: float, b: float, weights: Path) -> Image.Image:
    """OpenPose body keypoints from a photo (controlnet_aux), with weights from models/annotators/."""
    from studio.control.aux import import_aux

    OpenposeDetector = import_aux("controlnet_aux.open_pose").OpenposeDetector
    Body = import_aux("controlnet_aux.open_pose.body").Body
    detector = OpenposeDetector(Body(str(weights)))  # torch.load here is weights-only (torch >= 2.6)
    size = max(image.size)
    pose = detector(image.convert("RGB"), detect_resolution=size, image_resolution=size, output_type="pil")
    return pose.convert("RGB").resize(image.size)


# The registry. Extensions add entries through studio.api.
PREPROCESSORS: dict[str, PreprocessorSpec] = {
    "none": PreprocessorSpec(_none, "any"),
    "canny": PreprocessorSpec(_canny, "canny", "Low threshold", "High threshold"),
    "scribble_xdog": PreprocessorSpec(_scribble, "scribble"),
    "invert": PreprocessorSpec(_invert, "scribble"),
    "openpose": PreprocessorSpec(_openpose, "pose", weights="body_pose_model.pth"),
}
DEFAULT_MODULE = {"canny": "canny", "scribble": "scribble_xdog", "pose": "none"}


def run_preprocessor(name: str, image: Image.Image, threshold_a: float, threshold_b: float,
                     annotators_dir: Path, registry: dict[str, PreprocessorSpec] = PREPROCESSORS) -> Image.Image:
    if name not in registry:
        raise ValueError(f"unknown preprocessor {name!r}; choose one of: {', '.join(registry)}")
    spec = registry[name]
    reason = spec.unavailable_reason(annotators_dir)
    if reason:
        raise ValueError(f"preprocessor {name!r} is unavailable: {reason}")
    if spec.weights is not None:  # detectors get their weights file
        return spec.run(image, threshold_a, threshold_b, annotators_dir / spec.weights)
    return spec.run(image, threshold_a, threshold_b)
