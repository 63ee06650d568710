"""Face restorers by A1111's names and the files they need, found in the models folder only (torch-free:
the web routes list them).

A restorer runs when its weights are in A1111's folder (models/GFPGAN, models/Codeformer) and the face
detector A1111's face helper (facexlib) uses, RetinaFace ResNet-50 `detection_Resnet50_Final.pth`, is in
models/GFPGAN (where A1111 keeps it) or models/Codeformer. Nothing is downloaded: a missing file is
refused with the folder and the file name to place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".pth", ".safetensors")
DETECTOR_FILE = "detection_Resnet50_Final.pth"
DETECTOR_FOLDERS = ("GFPGAN", "Codeformer")


@dataclass(frozen=True)
class Restorer:
    """An A1111 face restorer: its folder under models/, a word its file names contain, the file A1111
    downloads (named in refusals)."""
    name: str
    folder: str
    marker: str
    file: str


RESTORERS: dict[str, Restorer] = {
    "CodeFormer": Restorer("CodeFormer", "Codeformer", "codeformer", "codeformer-v0.1.0.pth"),
    "GFPGAN": Restorer("GFPGAN", "GFPGAN", "gfpgan", "GFPGANv1.4.pth"),
    "RestoreFormer": Restorer("RestoreFormer", "GFPGAN", "restoreformer", "RestoreFormer.pth"),
}


def _files(models_dir: Path, folder: str) -> list[Path]:
    """Weight files of one models/ folder, resolved, that stay inside the models folder (no symlink out)."""
    root = models_dir.resolve()
    directory = root / folder
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        resolved = path.resolve()
        if path.suffix.lower() in SUFFIXES and resolved.is_file() and resolved.is_relative_to(root):
            found.append(resolved)
    return found


def restorer_file(models_dir: Path, name: str) -> Path | None:
    """The restorer's weights: the newest-named file of its folder whose name has its word (GFPGANv1.4 over v1.3)."""
    restorer = RESTORERS[name]
    matches = [path for path in _files(models_dir, restorer.folder) if restorer.marker in path.name.lower()]
    return matches[-1] if matches else None


def detector_file(models_dir: Path) -> Path | None:
    for folder in DETECTOR_FOLDERS:
        for path in _files(models_dir, folder):
            if path.name.lower() == DETECTOR_FILE.lower():
                return path
    return None


def present(models_dir: Path) -> dict[str, Path]:
    """The restorers whose weights are in place (A1111's order: CodeFormer, GFPGAN), by name."""
    found = {name: restorer_file(models_dir, name) for name in RESTORERS}
    return {name: path for name, path in found.items() if path is not None}


def api_items(models_dir: Path) -> list[dict[str, Any]]:
    """A1111's /sdapi/v1/face-restorers: [{"name", "cmd_dir"}] for the restorers whose file is here."""
    return [{"name": name, "cmd_dir": str(path.parent)} for name, path in present(models_dir).items()]


def missing_reason(models_dir: Path, name: str) -> str | None:
    """Why restorer `name` cannot run (the file to place and where), or None when it can."""
    if name not in RESTORERS:
        return f"unknown face restorer {name!r}; choose one of: {', '.join(RESTORERS)}"
    restorer = RESTORERS[name]
    if restorer_file(models_dir, name) is None:
        return (f"{name} needs its weights: place {restorer.file} (or another {restorer.marker}*.pth/.safetensors "
                f"file) in {models_dir / restorer.folder}; nothing is downloaded")
    if detector_file(models_dir) is None:
        return (f"{name} needs the face detector A1111 uses: place {DETECTOR_FILE} (RetinaFace ResNet-50, from "
                f"facexlib) in {models_dir / 'GFPGAN'}; nothing is downloaded")
    return None

