"""The short hashes A1111 writes into infotext for networks, cached by path, size and mtime.

- Lora hashes: 12 hex of kohya's "addnet" hash (sha256 of a .safetensors file's bytes after its
  JSON header, i.e. the tensor data only; A1111 `hashes.addnet_hash_safetensors`), unless the
  file's metadata carries `sshs_model_hash` (A1111 prefers it); other files: sha256 of the file.
- TI hashes: 12 hex of the sha256 of the whole file (A1111 `Embedding.shorthash`).
- VAE hash: 10 hex of the sha256 of the whole file (A1111 `sd_vae.get_loaded_vae_hash`); for a
  diffusers folder, of its weight files in name order.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from studio.settings import Settings

BLOCK = 1 << 20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def lora_hash(path: Path, settings: Settings, metadata: dict[str, str] | None = None) -> str:
    given = (metadata or {}).get("sshs_model_hash")
    if given:
        return given[:12]
    if path.suffix == ".safetensors":
        return _cached("addnet", path, settings, lambda: _sha256(_tensor_data(path)))[:12]
    return full_hash(path, settings)[:12]


def embedding_hash(path: Path, settings: Settings) -> str:
    return full_hash(path, settings)[:12]


def vae_hash(path: Path, settings: Settings) -> str:
    return full_hash(path, settings)[:10]


def full_hash(path: Path, settings: Settings) -> str:
    """sha256 of a file, or of a folder's weight files in name order."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        return _cached("folder", path, settings, lambda: _sha256(_chain(files)), files)
    return _cached("sha256", path, settings, lambda: _sha256(_blocks(path)))


def _cached(kind: str, path: Path, settings: Settings, compute: Callable[[], str], files: list[Path] | None = None) -> str:
    stamp = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (files or [path]))
    key = f"{kind}|{stamp}"
    cache_file = settings.cache_dir / "network-hashes.json"
    cache = _read(cache_file)
    if key not in cache:
        cache[key] = compute()
        _write(cache_file, cache)
    return cache[key]


def _sha256(blocks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(block)
    return digest.hexdigest()


def _blocks(path: Path, offset: int = 0) -> Iterable[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        yield from iter(lambda: handle.read(BLOCK), b"")


def _tensor_data(path: Path) -> Iterable[bytes]:
    with path.open("rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
    return _blocks(path, 8 + header_length)


def _chain(files: list[Path]) -> Iterable[bytes]:
    for path in files:
        yield from _blocks(path)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
