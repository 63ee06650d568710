"""Finding network files: models/Lora, models/embeddings, models/VAE (A1111's folders).

Every name from a prompt, a request or a PNG becomes a file only through these lookups of
discovered entries, so nothing outside the folders can be named.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from studio.request import RequestError
from studio.settings import Settings

PICKLE_SUFFIXES = (".pt", ".ckpt", ".bin", ".pth")
LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt")
AUTOMATIC = "Automatic"
VAE_AUTOMATIC_NAMES = (AUTOMATIC, "None", "")  # A1111: both mean the checkpoint's own VAE here


@dataclass(frozen=True)
class NetworkFile:
    kind: str  # "lora" | "embedding" | "vae"
    name: str  # what users type: file stem (LoRA, embedding), file or folder name (VAE)
    path: Path

    @property
    def is_pickle(self) -> bool:
        return self.path.suffix in PICKLE_SUFFIXES

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()


HYPERNETWORK_SUFFIXES = (".pt", ".safetensors", ".ckpt")


def lora_dir(settings: Settings) -> Path:
    return settings.models_dir / "Lora"


def embeddings_dir(settings: Settings) -> Path:
    return settings.models_dir / "embeddings"


def vae_dir(settings: Settings) -> Path:
    return settings.models_dir / "VAE"


def hypernetwork_dir(settings: Settings) -> Path:
    return settings.models_dir / "hypernetworks"


def discover_hypernetworks(settings: Settings) -> list[NetworkFile]:
    """A1111's models/hypernetworks files: listed so clients see them; a <hypernet:...> tag is refused."""
    return [NetworkFile("hypernet", p.stem, p) for p in _files(hypernetwork_dir(settings), HYPERNETWORK_SUFFIXES)]


def discover_loras(settings: Settings) -> list[NetworkFile]:
    return [NetworkFile("lora", p.stem, p) for p in _files(lora_dir(settings), LORA_SUFFIXES)]


def discover_embeddings(settings: Settings) -> list[NetworkFile]:
    return [NetworkFile("embedding", p.stem, p) for p in _files(embeddings_dir(settings), EMBEDDING_SUFFIXES)]


def discover_vaes(settings: Settings) -> list[NetworkFile]:
    root = vae_dir(settings)
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and (p / "config.json").is_file()] if root.is_dir() else []
    files = _files(root, VAE_SUFFIXES, skip=folders)
    return [NetworkFile("vae", p.relative_to(root).as_posix(), p) for p in sorted(files + folders)]


def _files(root: Path, suffixes: tuple[str, ...], skip: list[Path] | None = None) -> list[Path]:
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if any(part.startswith(".") for part in relative) or any(s in path.parents for s in skip or []):
            continue
        if path.is_file() and path.suffix.lower() in suffixes:
            found.append(path)
    return found


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The free-form metadata of a .safetensors header (kohya writes ss_* training details)."""
    if path.suffix != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception:  # a damaged file: discovery still lists it, loading says why
        return {}


def lora_alias(entry: NetworkFile) -> str:
    """A1111's alias: the name the trainer gave it (ss_output_name), else the file name."""
    return safetensors_metadata(entry.path).get("ss_output_name") or entry.name


def find_lora(name: str, settings: Settings) -> NetworkFile:
    entries = discover_loras(settings)
    for match in (lambda e: e.name == name, lambda e: lora_alias(e) == name, lambda e: e.name.lower() == name.lower()):
        found = [entry for entry in entries if match(entry)]
        if found:
            return found[0]
    raise RequestError(f"LoRA {name!r} not found in {lora_dir(settings)} (prompt tag <lora:{name}:...>)")


def find_vae(name: str, settings: Settings) -> NetworkFile:
    entries = discover_vaes(settings)
    for entry in entries:
        if name in (entry.name, entry.path.name, entry.path.stem):
            return entry
    available = ", ".join([AUTOMATIC, *(e.name for e in entries)])
    raise RequestError(f"VAE {name!r} not found in {vae_dir(settings)}; available: {available}")


def is_automatic_vae(name: str | None) -> bool:
    return name is None or name in VAE_AUTOMATIC_NAMES
