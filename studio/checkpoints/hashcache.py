"""Short file hashes cached in a JSON file under the cache dir, keyed by path, size and mtime
(the model hash and the network hashes share this; hashing multi-GB files twice is the cost avoided)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

BLOCK = 1 << 20


def stamp(files: Iterable[Path]) -> str:
    """What identifies these files' contents without reading them."""
    return "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def cached(cache_file: Path, key: str, compute: Callable[[], str]) -> str:
    cache = read_json(cache_file)
    if key not in cache:
        cache[key] = compute()
        write_json(cache_file, cache)
    return cache[key]


def file_blocks(path: Path, offset: int = 0) -> Iterable[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        yield from iter(lambda: handle.read(BLOCK), b"")


def sha256_hex(blocks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(block)
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Written to a temporary name and renamed: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
