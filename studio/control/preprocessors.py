"""The preprocessor registry: sd-webui-controlnet's module names -> functions that turn an image
into a control image. Detectors that need downloaded weights are listed but unavailable (with the
reason) unless their weights sit under models/ControlNet/annotators/ (or models/annotators/) — never a
download attempt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

from PIL import Image, ImageOps

from studio.control import detectors, edges, simple

# (image, threshold_a, threshold_b[, weights file]) -> control image
Preprocess = Callable[..., Image.Image]
AnnotatorDirs = Union[Path, Sequence[Path]]  # one folder, or several searched in order


@dataclass(frozen=True)
class PreprocessorSpec:
    run: Preprocess  # (image, threshold_a, threshold_b) -> control image (RGB, same size)
    control_type: str  # the ControlNet family it feeds
    threshold_a: str | None = None  # label of threshold_a in the UI, None when unused
    threshold_b: str | None = None
    weights: str | None = None  # file under models/ControlNet/annotators/ (or models/annotators/) it needs
    range_a: tuple[float, float, float] = (1, 255, 100)  # threshold_a's (min, max, default)
    range_b: tuple[float, float, float] = (1, 255, 200)
    uses_mask: bool = False  # run(image, mask) instead: the unit's (or the inpaint) mask
    missing: str | None = None  # why it cannot run in this install at all (its detector's code is absent)
    folder: str | None = None  # a transformers-format folder (config.json + safetensors) accepted as well
    reads_file: bool = True  # False: only `folder` runs; sd-webui-controlnet's `weights` file is not readable

    def weights_path(self, annotators: AnnotatorDirs) -> Path | None:
        """Where its weights are (file, or transformers folder; the first annotators folder that has
        them), None when absent."""
        for root in _dirs(annotators):
            if self.folder and (root / self.folder / "config.json").is_file():
                return root / self.folder
            if self.weights and self.reads_file and (root / self.weights).is_file():
                return root / self.weights
        return None

    def unavailable_reason(self, annotators: AnnotatorDirs) -> str | None:
        if self.missing or self.weights is None or self.weights_path(annotators) is not None:
            return self.missing  # code that is absent stays the reason, with or without the weights
        where = " or ".join(str(folder) for folder in _dirs(annotators))
        if not self.reads_file:
            return (f"needs a transformers-format folder {self.folder}/ (config.json + model.safetensors) under "
                    f"{where}; sd-webui-controlnet's {self.weights} is not readable here "
                    "(detector weights are never downloaded)")
        also = f" (or a transformers-format folder {self.folder}/ with config.json)" if self.folder else ""
        return f"needs {self.weights}{also} under {where} (detector weights are never downloaded)"


def _dirs(annotators: AnnotatorDirs) -> tuple[Path, ...]:
    return (annotators,) if isinstance(annotators, Path) else tuple(annotators)


def annotator_dirs(models_dir: Path) -> tuple[Path, ...]:
    """Where detector weights are looked for: models/ControlNet/annotators/, then models/annotators/."""
    return models_dir / "ControlNet" / "annotators", models_dir / "annotators"


def _none(image: Image.Image, a: float, b: float) -> Image.Image:
    return image.convert("RGB")


def _canny(image: Image.Image, low: float, high: float) -> Image.Image:
    return edges.canny(image, int(low), int(high))


def _scribble(image: Image.Image, a: float, b: float) -> Image.Image:
    return edges.scribble_from_image(image)


def _invert(image: Image.Image, a: float, b: float) -> Image.Image:
    """Black lines on white (a drawing) -> white on black, as scribble ControlNets expect."""
    return ImageOps.invert(image.convert("RGB"))


# The registry. Extensions add entries through studio.api.
PREPROCESSORS: dict[str, PreprocessorSpec] = {
    "none": PreprocessorSpec(_none, "any"),
    "canny": PreprocessorSpec(_canny, "canny", "Low threshold", "High threshold"),
    "scribble_xdog": PreprocessorSpec(_scribble, "scribble"),
    "invert": PreprocessorSpec(_invert, "scribble"),
    "threshold": PreprocessorSpec(simple.threshold, "scribble", "Binarization Threshold", range_a=(0, 255, 127)),
    "tile_resample": PreprocessorSpec(simple.tile_resample, "tile", "Down Sampling Rate", range_a=(1, 8, 1)),
    "shuffle": PreprocessorSpec(simple.shuffle, "shuffle"),
    "inpaint_only": PreprocessorSpec(simple.inpaint_only, "inpaint", uses_mask=True),
    # reference_only runs no preprocessor: the image steers the UNet's self-attention (control/reference.py).
    "reference_only": PreprocessorSpec(_none, "reference", "Style Fidelity (only for Balanced mode)",
                                       range_a=(0, 1, 0.5)),
    # IP-Adapter: the image goes to the adapter's CLIP image encoder as it is (control/ipadapter.py).
    "ip-adapter_clip_sd15": PreprocessorSpec(_none, "ip-adapter"),
    "ip-adapter_clip_sdxl": PreprocessorSpec(_none, "ip-adapter"),
    **{name: PreprocessorSpec(**fields) for name, fields in detectors.DETECTORS.items()},
}
DEFAULT_MODULE = {"canny": "canny", "scribble": "scribble_xdog", "pose": "none", "tile": "tile_resample",
                  "inpaint": "inpaint_only", "shuffle": "shuffle", "reference": "reference_only",
                  "depth": "depth_midas", "lineart": "lineart_realistic", "softedge": "softedge_pidinet",
                  "normal": "normal_bae", "mlsd": "mlsd", "seg": "seg_ofade20k",
                  "ip-adapter": "ip-adapter_clip_sd15"}


def threshold_defaults(name: str, registry: dict[str, "PreprocessorSpec"] = PREPROCESSORS) -> tuple[float, float]:
    spec = registry.get(name)
    return (spec.range_a[2], spec.range_b[2]) if spec is not None else (100.0, 200.0)


def run_preprocessor(name: str, image: Image.Image, threshold_a: float, threshold_b: float,
                     annotators_dir: AnnotatorDirs, registry: dict[str, PreprocessorSpec] = PREPROCESSORS,
                     mask: Image.Image | None = None) -> Image.Image:
    if name not in registry:
        raise ValueError(f"unknown preprocessor {name!r}; choose one of: {', '.join(registry)}")
    spec = registry[name]
    reason = spec.unavailable_reason(annotators_dir)
    if reason:
        raise ValueError(f"preprocessor {name!r} is unavailable: {reason}")
    if spec.uses_mask:
        return spec.run(image, mask)
    if spec.weights is not None:  # detectors get their weights file
        return spec.run(image, threshold_a, threshold_b, spec.weights_path(annotators_dir))
    return spec.run(image, threshold_a, threshold_b)
