"""Past outputs: list outputs/ newest first, page by page, search their infotexts, delete safely.

Listing only stats files (no image is decoded), and only in folders that changed since the last
listing (outputs are written once, so a folder's mtime says when its list of files changed); a
page reads the text chunks of its own files. A search reads infotexts once per file version and
keeps them in the index (keyed by path and modification time), so thousands of files are
searched without decoding a pixel (benchmarks/history_listing.py measures 5,000). Deleting
accepts only a PNG inside outputs/ (after resolving links) and takes its companions with it.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.records.storage import PARAMETERS_KEY, read_png_text

COMPANION = re.compile(r"^(?P<stem>.+)-(init|mask|control-\d+)$")


class HistoryError(ValueError):
    """A path outside outputs/, or not one of its images."""


@dataclass(frozen=True)
class HistoryItem:
    path: Path
    mode: str  # "txt2img", "img2img", "extras", ... (the outputs/<mode>-images folder)
    mtime: float
    infotext: str = ""


@dataclass(frozen=True)
class HistoryPage:
    items: list[HistoryItem]
    total: int  # matching files over all pages
    page: int
    pages: int


@dataclass(frozen=True)
class _Folder:
    mtime_ns: int
    read_ns: int  # when it was read: a read within FRESH_SECONDS of a change is not trusted
    files: tuple[tuple[Path, float], ...]  # (output PNG, its mtime)
    subfolders: tuple[Path, ...]


class HistoryIndex:
    """Held by the studio (not global): the outputs root, what each folder held when it was last
    read (reread only when the folder's mtime changes, so listing 5,000 files costs a few folder
    stats), the sorted listing, and a cache of infotexts."""

    # A folder read less than this after it changed is read again next time: a file added in the
    # same tick of the (coarse) mtime clock as the read would otherwise be missed.
    FRESH_SECONDS = 2.0

    def __init__(self, outputs_root: Path) -> None:
        self.root = outputs_root
        self._texts: dict[tuple[Path, float], str] = {}
        self._folders: dict[Path, _Folder] = {}
        self._sorted: list[tuple[Path, float]] = []
        self._lock = threading.Lock()

    def files(self) -> list[tuple[Path, float]]:
        """Every output PNG (companions, hidden files and links left out), newest first."""
        if not self.root.is_dir():
            return []
        with self._lock:
            folders = self._scan()
            if folders != self._folders or not self._folders:
                found = [item for folder in folders.values() for item in folder.files]
                self._sorted = sorted(found, key=lambda item: (item[1], str(item[0])), reverse=True)
                live = set(found)
                self._texts = {key: text for key, text in self._texts.items() if key in live}
            self._folders = folders
            return self._sorted

    def _scan(self) -> dict[Path, _Folder]:
        """The <mode>-images folders and their subfolders, each reread only when it changed."""
        try:
            pending = [Path(entry.path) for entry in os.scandir(self.root)
                       if entry.name.endswith("-images") and entry.is_dir(follow_symlinks=False)]
        except OSError:
            return {}
        folders: dict[Path, _Folder] = {}
        while pending:
            folder = pending.pop()
            try:
                mtime = folder.stat().st_mtime_ns
            except OSError:
                continue  # removed meanwhile
            cached = self._folders.get(folder)
            if cached is None or cached.mtime_ns != mtime or cached.read_ns - mtime < self.FRESH_SECONDS * 1e9:
                cached = _read_folder(folder, mtime)
            folders[folder] = cached
            pending += cached.subfolders
        return folders

    def infotext(self, path: Path, mtime: float) -> str:
        """The PNG's A1111 parameters, read from its text chunks only (no pixel is decoded)."""
        key = (path, mtime)
        with self._lock:
            if key in self._texts:
                return self._texts[key]
        try:
            text = read_png_text(path).get(PARAMETERS_KEY, "")
        except (OSError, ValueError, StudioError):
            text = ""
        with self._lock:
            self._texts[key] = text
        return text

    def page(self, page: int = 1, per_page: int = 24, query: str = "") -> HistoryPage:
        files = self.files()
        words = query.lower().split()
        if words:
            files = [(p, m) for p, m in files if all(w in self.infotext(p, m).lower() for w in words)]
        pages = max(1, -(-len(files) // per_page))
        page = min(max(1, page), pages)
        chosen = files[(page - 1) * per_page: page * per_page]
        items = [HistoryItem(p, self._mode(p), m, self.infotext(p, m)) for p, m in chosen]
        return HistoryPage(items, len(files), page, pages)

    def _mode(self, path: Path) -> str:
        folder = path.relative_to(self.root).parts[0]
        return folder[: -len("-images")] if folder.endswith("-images") else folder

    def resolve(self, path: str | Path) -> Path:
        """`path` as an output PNG inside outputs/, or HistoryError."""
        root = self.root.resolve()
        candidate = Path(path)
        resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
        if not resolved.is_relative_to(root) or resolved == root:
            raise HistoryError(f"{path} is not inside the outputs folder")
        if resolved.suffix.lower() != ".png" or not resolved.is_file():
            raise HistoryError(f"{path} is not an output image")
        return resolved

    def delete(self, path: str | Path) -> list[Path]:
        """Delete an output PNG and its companions (-init, -mask, -control-N); returns what went."""
        target = self.resolve(path)
        removed = [target]
        for companion in target.parent.glob(f"{target.stem}-*.png"):
            match = COMPANION.match(companion.stem)
            if match and match.group("stem") == target.stem:
                removed.append(companion)
        for file in removed:
            file.unlink(missing_ok=True)
        return removed


def _read_folder(folder: Path, mtime_ns: int) -> _Folder:
    files, subfolders = [], []
    read_ns = time.time_ns()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return _Folder(mtime_ns, read_ns, (), ())
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(Path(entry.path))
            elif (entry.name.endswith(".png") and not entry.name.startswith(".") and not entry.is_symlink()
                  and not COMPANION.match(entry.name[:-4])):
                files.append((Path(entry.path), entry.stat(follow_symlinks=False).st_mtime))
        except OSError:
            continue  # deleted meanwhile
    return _Folder(mtime_ns, read_ns, tuple(files), tuple(subfolders))
