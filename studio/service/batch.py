"""Folder in, folder out: A1111's img2img "Batch" tab and Extras' "Batch from directory".

Folders go through `studio.service.folders.FolderPolicy` (who may name which folder); every image runs
through the studio's one generation entry (img2img) or its Extras, one at a time, and is saved
with its infotext in the output folder (outputs/ when none is given) under the usual numbered
names, which never overwrite an existing file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from PIL import Image

from studio.images import MAX_INPUT_PIXELS
from studio.records import storage
from studio.request import GenerationRequest
from studio.service.folders import FolderError, FolderPolicy
from studio.service.results import JobResult
from studio.settings import Settings

Progress = Callable[[float, str], None]
Submit = Callable[..., JobResult]  # the generation service's submit(request, directory=, user=)
RunExtras = Callable[..., "tuple[list[Any], str]"]  # the extras service's run(images, values, save=False)


@dataclass(frozen=True)
class BatchResult:
    paths: list[Path]  # saved images, in input order
    infotexts: list[str]
    notes: list[str] = field(default_factory=list)  # inputs skipped, and why
    interrupted: bool = False

    def summary(self) -> str:
        head = f"Saved {len(self.paths)} image(s)" + (f" in `{self.paths[0].parent}`." if self.paths else ".")
        if self.interrupted:
            head = "Interrupted. " + head
        return "\n".join([head, *(f"⚠️ {note}" for note in self.notes)])


def run_img2img_batch(submit: Submit, policy: FolderPolicy, request: GenerationRequest, input_dir: str | Path,
                      output_dir: str | Path | None = None, mask_dir: str | Path | None = None,
                      progress: Progress = lambda fraction, text: None, user: str | None = None) -> BatchResult:
    """img2img (inpaint with a mask folder) over every image of `input_dir`. Masks match an image
    by file stem; a mask folder with a single mask uses it for every image (as A1111 does)."""
    files = _inputs(policy, input_dir)
    masks = _masks(policy, mask_dir)
    target = policy.output_folder(output_dir, "output_dir") if _given(output_dir) else None
    paths, texts, notes = [], [], []
    for n, path in enumerate(files):
        progress(n / len(files), f"img2img batch: image {n + 1} of {len(files)} ({path.name})")
        mask_path = _mask_for(path, masks)
        if masks is not None and mask_path is None:
            notes.append(f"{path.name}: no mask of that name in the mask folder; skipped")
            continue
        try:
            image = open_image(path).convert("RGB")
            mask = open_image(mask_path).convert("L") if mask_path is not None else None
        except FolderError as error:
            notes.append(str(error))
            continue
        job = submit(request.replace(init_image=image, mask=mask), directory=target, user=user)
        paths += [item.path for item in job.images if item.path is not None]
        texts += [item.infotext for item in job.images if item.path is not None]
        if job.interrupted:
            return BatchResult(paths, texts, notes, interrupted=True)
    return BatchResult(paths, texts, notes)


def run_extras_folder(run_extras: RunExtras, policy: FolderPolicy, values: Mapping[str, Any], input_dir: str | Path,
                      output_dir: str | Path | None = None,
                      progress: Progress = lambda fraction, text: None) -> BatchResult:
    """Extras (upscale) over every image of `input_dir`, saved to `output_dir`
    (outputs/extras-images/<date> when none is given)."""
    files = _inputs(policy, input_dir)
    target = (policy.output_folder(output_dir, "output_dir") if _given(output_dir)
              else storage.output_dir(policy.outputs, "extras"))
    paths, texts, notes = [], [], []
    for n, path in enumerate(files):
        progress(n / len(files), f"Extras batch: image {n + 1} of {len(files)} ({path.name})")
        try:
            image = open_image(path).convert("RGB")
        except FolderError as error:
            notes.append(str(error))
            continue
        results, info = run_extras([image], values, save=False)
        paths.append(storage.save_png(results[0], target, 0, info))
        texts.append(info)
    return BatchResult(paths, texts, notes)


def open_image(path: Path) -> Image.Image:
    """The image at `path`, decoded; FolderError (naming the file) when it is not an image or too large."""
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_INPUT_PIXELS:
                raise FolderError(f"{path.name}: {opened.width}x{opened.height} is too large; skipped")
            opened.load()
            return opened.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise FolderError(f"{path.name}: not a readable image ({type(error).__name__}); skipped") from None


def folder_policy(settings: Settings, outputs: Path) -> FolderPolicy:
    """Who may name which folder; a user of a shared studio has outputs/<user>/ (`outputs`) as outputs/."""
    policy = FolderPolicy.from_settings(settings)
    return FolderPolicy(outputs, policy.read_roots, policy.restricted)


def _given(value: str | Path | None) -> bool:
    return value is not None and bool(str(value).strip())


def _inputs(policy: FolderPolicy, input_dir: str | Path) -> list[Path]:
    folder = policy.input_folder(input_dir, "input_dir")
    files = policy.images(folder, "input_dir")
    if not files:
        raise FolderError(f"input_dir: no images in {str(input_dir)[:200]!r}")
    return files


def _masks(policy: FolderPolicy, mask_dir: str | Path | None) -> list[Path] | None:
    if not _given(mask_dir):
        return None
    assert mask_dir is not None
    masks = policy.images(policy.input_folder(mask_dir, "mask_dir"), "mask_dir")
    if not masks:
        raise FolderError(f"mask_dir: no images in {str(mask_dir)[:200]!r}")
    return masks


def _mask_for(image: Path, masks: list[Path] | None) -> Path | None:
    if not masks:
        return None
    if len(masks) == 1:
        return masks[0]
    return next((mask for mask in masks if mask.stem == image.stem), None)
