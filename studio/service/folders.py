"""Server folders a user names for batch work (img2img batch, Extras "Batch from directory").

Who may name which folder:
- The local operator (the server listens on loopback only, no share link, not a hosted demo)
  owns the machine: any folder is allowed, absolute or relative.
- Anyone else (--listen / --host / --share / a hosted demo) may only name folders inside
  outputs/ (read and write) or inside a `--batch-root` folder (read only). Paths are resolved
  before the check (`..` collapsed, symlinks followed), so neither climbs out; a file inside an
  allowed folder that links outside it is refused too.
Relative paths are relative to outputs/ (the command line makes its paths absolute first, so
there they are relative to the working directory, as a shell user expects).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.request import RequestError
from studio.settings import Settings

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_BATCH_FILES = 10_000


class FolderError(RequestError):
    """A folder that does not exist, is not a folder, or is not one this user may use."""


@dataclass(frozen=True)
class FolderPolicy:
    outputs: Path
    read_roots: tuple[Path, ...]  # besides outputs/, where a restricted user may read from
    restricted: bool  # True: only outputs/ and read_roots; False: the local operator, anything

    @classmethod
    def from_settings(cls, settings: Settings) -> "FolderPolicy":
        restricted = settings.listens_publicly or settings.hosted_demo
        return cls(settings.outputs_dir, tuple(settings.batch_roots), restricted)

    def input_folder(self, text: str | Path | None, field: str) -> Path:
        """An existing folder to read images from."""
        folder = self._resolve(text, field, strict=True)
        if not folder.is_dir():
            raise FolderError(f"{field}: {_shown(text)} is not a folder")
        self._check_inside(folder, (self.outputs, *self.read_roots), text, field)
        return folder

    def output_folder(self, text: str | Path | None, field: str) -> Path:
        """A folder to write into (created when missing)."""
        folder = self._resolve(text, field, strict=False)
        self._check_inside(folder, (self.outputs,), text, field)
        if folder.exists() and not folder.is_dir():
            raise FolderError(f"{field}: {_shown(text)} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def images(self, folder: Path, field: str) -> list[Path]:
        """The image files of `folder` (not its subfolders), by name; a restricted user's links
        that lead out of the allowed folders are refused."""
        found = sorted(path for path in folder.iterdir()
                       if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."))
        if len(found) > MAX_BATCH_FILES:
            raise FolderError(f"{field}: {len(found)} images is more than {MAX_BATCH_FILES}; split the folder")
        files = []
        for path in found:
            if self.restricted:
                self._check_inside(path.resolve(), (self.outputs, *self.read_roots), path.name, field)
            if path.is_file():
                files.append(path)
        return files

    def _resolve(self, text: str | Path | None, field: str, strict: bool) -> Path:
        if text is None or not str(text).strip():
            raise FolderError(f"{field}: give a folder")
        candidate = Path(str(text).strip()).expanduser() if not self.restricted else Path(str(text).strip())
        if not candidate.is_absolute():
            candidate = self.outputs / candidate
        try:
            return candidate.resolve(strict=strict)
        except FileNotFoundError:
            raise FolderError(f"{field}: {_shown(text)} does not exist") from None
        except (OSError, RuntimeError) as error:  # a link loop, a name too long
            raise FolderError(f"{field}: {_shown(text)} cannot be used ({type(error).__name__})") from None

    def _check_inside(self, path: Path, roots: tuple[Path, ...], text: object, field: str) -> None:
        if not self.restricted:
            return
        if any(path.is_relative_to(root.resolve()) for root in roots):
            return
        where = "outputs/" if len(roots) == 1 else "outputs/ or a --batch-root folder"
        raise FolderError(f"{field}: {_shown(text)} is outside {where}; this server is reachable from other "
                          "machines, so only those folders may be used")


def _shown(text: object) -> str:
    value = str(text)
    return repr(value if len(value) <= 200 else value[:200] + "…")


def named_folders(settings: Settings) -> dict[str, Path]:
    """The server's folders by the short name error texts use for them (studio.errors.relative_paths)."""
    return {"models": settings.models_dir, "outputs": settings.outputs_dir,
            "extensions": settings.extensions_dir, "cache": settings.cache_dir}
