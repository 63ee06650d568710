"""Read a checkpoint's tensors straight into the dtype the model will run in.

A multi-GB float32 file loaded for a bfloat16 model would otherwise sit in memory twice
(the float32 copy, then the converted model). Here every tensor is read into a buffer of the
target dtype chunk by chunk, so the only memory that grows is the result (plus one chunk).
.safetensors files are read with plain positioned reads rather than mmap: mapped pages count
in the process's resident size until the whole file is closed.
"""
from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from studio.errors import ModelError, describe_load_error

CHUNK_BYTES = 16 << 20
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """Tensor entries by key (dtype, shape, data_offsets), metadata left out."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100 << 20:
                raise ValueError("header too large")
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as error:
        raise ModelError(f"{path.name} is not a readable .safetensors file: {error}") from error
    header.pop("__metadata__", None)
    return header


def parameter_count(paths: list[Path], prefix: str = "") -> int:
    """Number of weights in .safetensors files (keys under `prefix`), from their headers only."""
    total = 0
    for path in paths:
        for key, entry in safetensors_header(path).items():
            if key.startswith(prefix):
                count = 1
                for size in entry["shape"]:
                    count *= int(size)
                total += count
    return total


def read_checkpoint(path: Path, dtype: torch.dtype, prefixes: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Every tensor (or those under `prefixes`) with floating point ones in `dtype`."""
    if path.suffix == ".safetensors":
        return _read_safetensors(path, dtype, prefixes)
    state = load_pickle_weights_only(path)
    return {k: _cast(v, dtype) for k, v in state.items()
            if isinstance(v, torch.Tensor) and (not prefixes or k.startswith(prefixes))}


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def _read_safetensors(path: Path, dtype: torch.dtype, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    header = safetensors_header(path)
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        base = 8 + length
        fd = handle.fileno()
        state = {}
        for key, entry in header.items():
            if prefixes and not key.startswith(prefixes):
                continue
            try:
                state[key] = _read_tensor(fd, base, entry, dtype)
            except (KeyError, ValueError, RuntimeError) as error:
                raise ModelError(f"{path.name}: tensor {key} cannot be read ({error})") from error
    return state


def _read_tensor(fd: int, base: int, entry: dict[str, Any], dtype: torch.dtype) -> torch.Tensor:
    stored = _SAFETENSORS_DTYPES[entry["dtype"]]
    start, end = (int(x) for x in entry["data_offsets"])
    shape = [int(x) for x in entry["shape"]]
    target = dtype if stored.is_floating_point else stored
    out = torch.empty(shape, dtype=target)
    flat = out.view(-1)
    itemsize = torch.empty((), dtype=stored).element_size()
    if (end - start) != flat.numel() * itemsize:
        raise ValueError("size does not match its shape")
    if flat.numel() == 0:
        return out
    if stored == target:  # read straight into the result
        _pread_into(fd, flat.view(torch.uint8).numpy(), base + start)
        return out
    per_chunk = max(1, CHUNK_BYTES // itemsize)
    buffer = torch.empty(min(per_chunk, flat.numel()), dtype=stored)
    for first in range(0, flat.numel(), per_chunk):
        count = min(per_chunk, flat.numel() - first)
        chunk = buffer[:count]
        _pread_into(fd, chunk.view(torch.uint8).numpy(), base + start + first * itemsize)
        flat[first:first + count] = chunk
    return out


def _pread_into(fd: int, target: Any, offset: int) -> None:
    view = memoryview(target).cast("B")
    done = 0
    while done < len(view):
        read = os.preadv(fd, [view[done:]], offset + done)
        if read <= 0:
            raise ValueError("file is truncated")
        done += read


def load_pickle_weights_only(path: Path) -> dict[str, Any]:
    """A .ckpt/.pt state dict through torch's weights-only unpickler (no code runs)."""
    try:
        # mmap (zip-format files only) keeps a multi-GB .ckpt out of RAM until tensors are read.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # weights_only refuses code-carrying pickles
        raise ModelError(f"{path.name} could not be read safely: {describe_load_error(error)}") from error
    while isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path.name} holds a {type(state).__name__}, not a checkpoint state dict")
    return state
