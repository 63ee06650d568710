"""Finding network files: models/Lora, models/embeddings, models/VAE (A1111's folders).

Every name from a prompt, a request or a PNG becomes a file only through these lookups of
discovered entries, so nothing outside the folders can be named.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    root: Path | None = field(default=None, compare=False)  # the folder it was found in (links out are refused)

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
    return [NetworkFile("lora", p.stem, p, lora_dir(settings)) for p in _files(lora_dir(settings), LORA_SUFFIXES)]


def discover_embeddings(settings: Settings) -> list[NetworkFile]:
    root = embeddings_dir(settings)
    return [NetworkFile("embedding", p.stem, p, root) for p in _files(root, EMBEDDING_SUFFIXES)]


def discover_vaes(settings: Settings) -> list[NetworkFile]:
    root = vae_dir(settings)
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and (p / "config.json").is_file()] if root.is_dir() else []
    files = _files(root, VAE_SUFFIXES, skip=folders)
    return [NetworkFile("vae", p.relative_to(root).as_posix(), p, root) for p in sorted(files + folders)]


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


MAX_HEADER = 100_000_000  # bytes of JSON header safetensors itself accepts


def file_problem(path: Path, root: Path) -> str | None:
    """Why a network file found under `root` must not be used, or None: a symbolic link to a file
    outside the folder (models/Lora/x.safetensors -> /etc/passwd), or a .safetensors whose header
    declares more bytes than the file holds (2^63-1 would make a reader seek or allocate that much)."""
    try:
        resolved, base = path.resolve(strict=True), root.resolve(strict=True)
    except (OSError, RuntimeError):
        return "it cannot be read (a broken link?)"
    if base not in resolved.parents:
        return f"it links to a file outside {root.name}/, which is refused"
    if path.suffix.lower() != ".safetensors":
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            size = path.stat().st_size
    except OSError as error:
        return f"it cannot be read ({error.strerror or error})"
    declared = int.from_bytes(head, "little") if len(head) == 8 else -1
    if declared < 2 or declared > min(MAX_HEADER, size - 8):
        return (f"its header declares {declared} bytes of a {size}-byte file: it is not a valid .safetensors file"
                if declared >= 0 else "it is too short to be a .safetensors file")
    return None


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The free-form metadata of a .safetensors header (kohya writes ss_* training details)."""
    if path.suffix != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception:  # a damaged file: discovery still lists it, loading says why
        return {}


def find_vae(name: str, settings: Settings) -> NetworkFile:
    entries = discover_vaes(settings)
    for entry in entries:
        if name in (entry.name, entry.path.name, entry.path.stem):
            return entry
    available = ", ".join([AUTOMATIC, *(e.name for e in entries)])
    raise RequestError(f"VAE {name!r} not found in {vae_dir(settings)}; available: {available}")


def is_automatic_vae(name: str | None) -> bool:
    return name is None or name in VAE_AUTOMATIC_NAMES
