"""Past outputs: list outputs/ newest first, page by page, search their infotexts, delete safely.

Listing only stats files (no image is decoded); a page reads the text chunks of its own files.
A search reads infotexts once per file version and keeps them in the index (keyed by path and
modification time), so thousands of files are searched without decoding a pixel. Deleting
accepts only a PNG inside outputs/ (after resolving links) and takes its companions with it.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from studio.storage import PARAMETERS_KEY

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


class HistoryIndex:
    """Held by the studio (not global): the outputs root and a cache of infotexts."""

    def __init__(self, outputs_root: Path) -> None:
        self.root = outputs_root
        self._texts: dict[tuple[Path, float], str] = {}
        self._lock = threading.Lock()

    def files(self) -> list[tuple[Path, float]]:
        """Every output PNG (companions left out), newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.glob("*-images"):
            for path in folder.rglob("*.png"):
                if path.name.startswith(".") or COMPANION.match(path.stem):
                    continue
                try:
                    found.append((path, path.stat().st_mtime))
                except OSError:
                    continue  # deleted meanwhile
        return sorted(found, key=lambda item: (item[1], str(item[0])), reverse=True)

    def infotext(self, path: Path, mtime: float) -> str:
        key = (path, mtime)
        with self._lock:
            if key in self._texts:
                return self._texts[key]
        try:
            with Image.open(path) as image:
                text = str(getattr(image, "text", {}).get(PARAMETERS_KEY, ""))
        except (OSError, ValueError):
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
