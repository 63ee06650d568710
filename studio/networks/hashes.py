"""The short hashes A1111 writes into infotext for networks, cached by path, size and mtime.

- Lora hashes: 12 hex of kohya's "addnet" hash (sha256 of a .safetensors file's bytes after its
  JSON header, i.e. the tensor data only; A1111 `hashes.addnet_hash_safetensors`), unless the
  file's metadata carries `sshs_model_hash` (A1111 prefers it); other files: sha256 of the file.
- TI hashes: 12 hex of the sha256 of the whole file (A1111 `Embedding.shorthash`).
- VAE hash: 10 hex of the sha256 of the whole file (A1111 `sd_vae.get_loaded_vae_hash`); for a
  diffusers folder, of its weight files in name order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from studio.checkpoints import hashcache
from studio.settings import Settings

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def lora_hash(path: Path, settings: Settings, metadata: dict[str, str] | None = None) -> str:
    given = (metadata or {}).get("sshs_model_hash")
    if given:
        return given[:12]
    if path.suffix == ".safetensors":
        return _cached("addnet", path, settings, lambda: hashcache.sha256_hex(_tensor_data(path)))[:12]
    return full_hash(path, settings)[:12]


def embedding_hash(path: Path, settings: Settings) -> str:
    return full_hash(path, settings)[:12]


def vae_hash(path: Path, settings: Settings) -> str:
    return full_hash(path, settings)[:10]


def full_hash(path: Path, settings: Settings) -> str:
    """sha256 of a file, or of a folder's weight files in name order."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        return _cached("folder", path, settings, lambda: hashcache.sha256_hex(_chain(files)), files)
    return _cached("sha256", path, settings, lambda: hashcache.sha256_hex(hashcache.file_blocks(path)))


def _cached(kind: str, path: Path, settings: Settings, compute: Callable[[], str], files: list[Path] | None = None) -> str:
    key = f"{kind}|{hashcache.stamp(files or [path])}"
    return hashcache.cached(settings.cache_dir / "network-hashes.json", key, compute)


def _tensor_data(path: Path) -> Iterable[bytes]:
    with path.open("rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
    return hashcache.file_blocks(path, 8 + header_length)


def _chain(files: list[Path]) -> Iterable[bytes]:
    for path in files:
        yield from hashcache.file_blocks(path)
