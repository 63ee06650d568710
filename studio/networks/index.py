"""LoRA names -> files through an index: the folder is listed once per request, and the index
(names, aliases, metadata, file problems) is rebuilt only when the listing changed or on a
refresh; a file's metadata is read once per version of the file, never once per tag.

Lookup follows A1111: the file name, then the alias (kohya's `ss_output_name`), then the file name
without regard to case. A file that cannot be used (a symbolic link out of models/Lora, a damaged
header) stays in the index with its problem: listed with a warning, refused by name with a 422.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Mapping

from studio.networks import discovery
from studio.networks.discovery import NetworkFile
from studio.request import RequestError
from studio.settings import Settings

log = logging.getLogger(__name__)

Stamp = tuple[str, int, int]  # path, size, mtime


@dataclass(frozen=True)
class LoraInfo:
    entry: NetworkFile
    metadata: Mapping[str, str]
    problem: str | None = None  # why the file is skipped

    @property
    def alias(self) -> str:
        return self.metadata.get("ss_output_name") or self.entry.name


@dataclass(frozen=True)
class LoraTable:
    items: tuple[LoraInfo, ...]
    by_name: Mapping[str, LoraInfo] = field(default_factory=dict)
    by_alias: Mapping[str, LoraInfo] = field(default_factory=dict)
    by_lower: Mapping[str, LoraInfo] = field(default_factory=dict)

    @classmethod
    def of(cls, items: list[LoraInfo]) -> "LoraTable":
        by_name: dict[str, LoraInfo] = {}
        by_alias: dict[str, LoraInfo] = {}
        by_lower: dict[str, LoraInfo] = {}
        for info in items:  # the first file of a name wins, as the old linear search did
            by_name.setdefault(info.entry.name, info)
            by_alias.setdefault(info.alias, info)
            by_lower.setdefault(info.entry.name.lower(), info)
        return cls(tuple(items), by_name, by_alias, by_lower)

    def find(self, name: str, settings: Settings) -> LoraInfo:
        info = self.by_name.get(name) or self.by_alias.get(name) or self.by_lower.get(name.lower())
        if info is None:
            raise RequestError(f"LoRA {name!r} not found in models/Lora (prompt tag <lora:{name}:...>)")
        if info.problem:
            raise RequestError(f"LoRA {info.entry.path.name} is skipped: {info.problem}")
        return info


class LoraIndex:
    """One per NetworkManager. `builds` and `metadata_reads` count the work done (tests read them)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stamps: tuple[Stamp, ...] | None = None
        self._table = LoraTable(())
        self._read: dict[Stamp, LoraInfo] = {}  # a file version -> what was read of it
        self.builds = 0
        self.metadata_reads = 0

    def refresh(self) -> None:
        """Forget everything: the next table lists the folder and reads every file again."""
        with self._lock:
            self._stamps, self._read = None, {}

    def table(self) -> LoraTable:
        entries = discovery.discover_loras(self.settings)
        stamps = tuple(_stamp(entry) for entry in entries)
        with self._lock:
            if stamps != self._stamps:
                self.builds += 1
                self._read = {stamp: self._read.get(stamp) or self._info(entry) for stamp, entry in zip(stamps, entries)}
                self._table = LoraTable.of([self._read[stamp] for stamp in stamps])
                self._stamps = stamps
            return self._table

    def _info(self, entry: NetworkFile) -> LoraInfo:
        problem = discovery.file_problem(entry.path, discovery.lora_dir(self.settings))
        if problem:
            log.warning("LoRA %s skipped: %s", entry.path.name, problem)
            return LoraInfo(entry, {}, problem)
        self.metadata_reads += 1
        return LoraInfo(entry, discovery.safetensors_metadata(entry.path))


def _stamp(entry: NetworkFile) -> Stamp:
    try:
        stat = entry.path.stat()
        return str(entry.path), stat.st_size, stat.st_mtime_ns
    except OSError:
        return str(entry.path), -1, -1

