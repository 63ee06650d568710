"""Upload quotas on a shared server (a Space, or a studio listening beyond this computer).

Gradio stores every upload in its cache folder and keeps it; an anonymous visitor could fill the
disk (8 x 60 MB stayed forever). Here each upload is admitted before Gradio reads its body, from its
declared length: one visitor may upload `upload_quota_mb` and everyone together `upload_total_mb`
within `upload_max_age` seconds (a sliding window); and the cache is swept: files older than
`upload_max_age` are deleted, then the oldest until the folder holds at most `upload_total_mb`.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from studio.settings import Settings

MB = 1 << 20
SWEEP_EVERY = 60.0  # seconds between two sweeps of the cache (an upload triggers it)


class UploadRefused(Exception):
    """Why an upload is refused: `status` 413 (over a quota, or no declared length: a chunked
    upload is refused as one past the limit, as the body limit does)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UploadQuota:
    def __init__(self, settings: Settings, clock: "callable[[], float]" = time.monotonic) -> None:  # type: ignore[valid-type]
        self.per_visitor = settings.upload_quota_mb * MB
        self.total = settings.upload_total_mb * MB
        self.max_age = float(settings.upload_max_age)
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, str, int]] = deque()  # (when, visitor, bytes), oldest first
        self._last_sweep = float("-inf")

    def admit(self, visitor: str, declared: str | None) -> int:
        """The upload's size once admitted (counted against the quotas), or UploadRefused."""
        if declared is None or not declared.strip().isdigit():
            raise UploadRefused(413, "upload refused: uploads must declare their size (Content-Length) on this server")
        size = int(declared)
        with self._lock:
            now = self._clock()
            while self._recent and now - self._recent[0][0] > self.max_age:
                self._recent.popleft()
            mine = sum(n for _, who, n in self._recent if who == visitor)
            everyone = sum(n for _, _, n in self._recent)
            if mine + size > self.per_visitor:
                raise UploadRefused(413, f"upload refused: at most {self.per_visitor // MB} MB of uploads per visitor "
                                         f"within {self.max_age / 60:g} minutes (upload_quota_mb)")
            if everyone + size > self.total:
                raise UploadRefused(413, f"upload refused: this server takes at most {self.total // MB} MB of uploads "
                                         f"within {self.max_age / 60:g} minutes (upload_total_mb); try again later")
            self._recent.append((now, visitor, size))
            return size

    def sweep_due(self) -> bool:
        with self._lock:
            now = self._clock()
            if now - self._last_sweep < SWEEP_EVERY:
                return False
            self._last_sweep = now
            return True

    def sweep(self, folder: Path, now: float | None = None) -> list[Path]:
        """Delete cached uploads older than max_age, then the oldest while the folder holds more
        than the total; returns what was deleted. Empty folders Gradio made per upload go too."""
        now = time.time() if now is None else now
        files = []
        for path in folder.rglob("*") if folder.is_dir() else ():
            try:
                if path.is_file() and not path.is_symlink():
                    stat = path.stat()
                    files.append((stat.st_mtime, stat.st_size, path))
            except OSError:
                continue
        files.sort()
        held = sum(size for _, size, _ in files)
        deleted = []
        for mtime, size, path in files:
            if now - mtime <= self.max_age and held <= self.total:
                break
            try:
                path.unlink()
            except OSError:
                continue
            held -= size
            deleted.append(path)
        for parent in {path.parent for path in deleted}:
            if parent != folder:
                try:
                    parent.rmdir()  # Gradio keeps each upload in a folder of its own
                except OSError:
                    pass
        return deleted
