"""Saving outputs: PNGs with their A1111 infotext and our exact recipe, written atomically.

Layout follows A1111: outputs/<mode>-images/<YYYY-MM-DD>/<NNNNN>-<seed>.png. A file is written
to a temporary name and then hard-linked to its final name, which fails instead of
overwriting if another writer got there first: an existing output is never replaced.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import struct
import tempfile
import time
import zlib
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

from PIL import Image, PngImagePlugin

from studio.errors import StudioError

PARAMETERS_KEY = "parameters"  # A1111's text chunk
STUDIO_KEY = "studio"  # our exact recipe (JSON)
TEMP_PREFIX = ".saving-"  # files being written; left over only by a crash
_NUMBERED = re.compile(r"^(\d{5})-")


def output_dir(outputs_root: Path, mode: str, today: _dt.date | None = None) -> Path:
    day = (today or _dt.date.today()).isoformat()
    return outputs_root / f"{mode}-images" / day


def png_info(infotext: str, recipe: Mapping[str, Any] | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, infotext)
    if recipe is not None:
        info.add_itxt(STUDIO_KEY, json.dumps(recipe, sort_keys=True))
    return info


class SaveError(StudioError):
    """An output could not be written (disk full, read-only folder, ...); nothing was left behind."""


def save_png(
    image: Image.Image,
    directory: Path,
    seed: int,
    infotext: str,
    recipe: Mapping[str, Any] | None = None,
    companions: Mapping[str, Image.Image] | None = None,
    decoration: str | None = None,
) -> Path:
    """Write image + metadata under the next free number; return the final path. `companions`
    ({suffix: image}) are saved beside it as <name>-<suffix>.png. All or nothing: every file is
    written to a temporary name first and linked to its final name only when all were written;
    on failure whatever was written is removed and SaveError says why. `decoration`: the name after
    `NNNNN-` (A1111's samples_filename_pattern applied, studio.records.filenames); the seed by default."""
    temps: list[Path] = []
    finals: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        main = _write_temp(directory, temps, lambda stream: image.save(
            stream, format="PNG", pnginfo=png_info(infotext, recipe)))
        extra = {suffix: _write_temp(directory, temps, partial(_save_plain, picture))
                 for suffix, picture in (companions or {}).items()}
        final = _link_to_free_name(main, directory, decoration or str(seed))
        finals.append(final)
        for suffix, temp in extra.items():
            target = final.with_name(f"{final.stem}-{suffix}.png")
            os.replace(temp, target)  # the name is new with `final`: only a leftover could be replaced
            finals.append(target)
        return final
    except OSError as error:
        for path in finals:
            path.unlink(missing_ok=True)
        raise SaveError(f"could not save the image in {directory}: {_reason(error)}") from error
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def save_companion(image: Image.Image, png_path: Path, suffix: str) -> Path:
    """Save an input that the run needs to be repeated (mask, control image) beside the output."""
    target = png_path.with_name(f"{png_path.stem}-{suffix}.png")
    image.save(target, format="PNG")
    return target


def _save_plain(image: Image.Image, stream: BinaryIO) -> None:
    image.save(stream, format="PNG")


def _write_temp(directory: Path, temps: list[Path], write: Callable[[BinaryIO], None]) -> Path:
    handle, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".png", dir=directory)
    temps.append(Path(name))
    with os.fdopen(handle, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())
    return Path(name)


_REASONS = {
    errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the folder is on a read-only file system", errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there", errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a part of the path is a file, not a folder",
}


def _reason(error: OSError) -> str:
    return _REASONS.get(error.errno or 0) or error.strerror or str(error)


def _link_to_free_name(tmp: Path, directory: Path, decoration: str) -> Path:
    number = next_number(directory)
    while True:
        final = directory / f"{number:05d}-{decoration}.png"
        try:
            os.link(tmp, final)
            return final
        except FileExistsError:
            number += 1


def remove_stale_temps(outputs_root: Path, older_than: float = 60.0) -> int:
    """Delete `.saving-*.png` files left by a crash (older than `older_than` seconds); their count."""
    if not outputs_root.is_dir():
        return 0
    cutoff, removed = time.time() - older_than, 0
    for path in outputs_root.rglob(f"{TEMP_PREFIX}*.png"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def next_number(directory: Path) -> int:
    numbers = [int(m.group(1)) for p in directory.glob("*.png") if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=-1) + 1


# Text chunk size caps (bytes of text). A1111 infotexts are under 10 KB; our recipe embeds the
# input images as base64 PNG: init + mask + 3 control images at 2048² of noise measure 73 MB.
TEXT_LIMITS = {PARAMETERS_KEY: 64 * 1024, STUDIO_KEY: 96 * 1024 * 1024}
OTHER_TEXT_LIMIT = 64 * 1024  # any other chunk: longer ones are left out with a note
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


class PngTextError(StudioError):
    """A PNG's text chunks cannot be read (damaged, or larger than any real one)."""


def read_png_text(path_or_image: Path | Image.Image) -> dict[str, str]:
    """The text chunks of a PNG (parameters, studio, anything else), size-capped. A file is read
    chunk by chunk without decoding its pixels (so a decompression bomb costs nothing); other
    image formats and already-open images go through Pillow's header reading."""
    if isinstance(path_or_image, Image.Image):
        return _capped(path_or_image.info)
    with open(path_or_image, "rb") as stream:
        if stream.read(len(_PNG_SIGNATURE)) == _PNG_SIGNATURE:
            return _read_png_chunks(stream)
    try:
        with Image.open(path_or_image) as image:  # raises UnidentifiedImageError for non-images
            return _capped(image.info)
    except Image.DecompressionBombError as error:
        raise PngTextError(f"the image is too large to open: {error}") from error


def _capped(info: Mapping[str, Any]) -> dict[str, str]:
    chunks: dict[str, str] = {}
    for key, value in info.items():
        if isinstance(value, str):
            chunks[key] = _check_size(key, len(value.encode("utf-8", "surrogatepass")), value)
    return chunks


def _check_size(key: str, size: int, value: str | None) -> str:
    """The value, or a note in its place for an oversized unknown chunk; oversized `parameters`
    or `studio` chunks are refused."""
    limit = TEXT_LIMITS.get(key, OTHER_TEXT_LIMIT)
    if size <= limit:
        return value if value is not None else ""
    if key in TEXT_LIMITS:
        raise PngTextError(f"the PNG's {key!r} text is larger than the {limit:,}-byte limit for it "
                           f"({size:,} bytes or more): refusing to read it (real ones are far smaller)")
    return f"<left out: larger than the {limit:,}-byte limit>"


def _read_png_chunks(stream: BinaryIO) -> dict[str, str]:
    """Walk the chunks after the signature, reading only text chunks (tEXt, zTXt, iTXt)."""
    chunks: dict[str, str] = {}
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return chunks  # truncated after the last complete chunk: keep what was read
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            return chunks
        if kind not in _TEXT_CHUNKS:
            stream.seek(length + 4, os.SEEK_CUR)
            continue
        if length > max(TEXT_LIMITS.values()) + 1024:
            key = _chunk_key(stream.read(80))
            chunks[key] = _check_size(key, length, None)
            stream.seek(length - 80 + 4, os.SEEK_CUR)
            continue
        data, crc = stream.read(length), stream.read(4)
        if len(data) < length or len(crc) < 4:
            return chunks
        if zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
            raise PngTextError(f"the PNG is damaged: its {kind.decode()} chunk fails its checksum")
        key, value = _decode_text_chunk(kind, data)
        if key:
            chunks[key] = value


def _chunk_key(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("latin-1")


def _decode_text_chunk(kind: bytes, data: bytes) -> tuple[str, str]:
    """(keyword, text) of one text chunk; compressed text is inflated up to the key's cap."""
    key_bytes, _, rest = data.partition(b"\0")
    key = key_bytes.decode("latin-1")
    limit = TEXT_LIMITS.get(key, OTHER_TEXT_LIMIT)
    if kind == b"tEXt":
        return key, _check_size(key, len(rest), rest.decode("latin-1"))
    if kind == b"zTXt":
        return key, _check_size(key, *_inflate(key, rest[1:], limit, "latin-1"))
    compressed, rest = rest[:1] == b"\1", rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    if compressed:
        return key, _check_size(key, *_inflate(key, text, limit, "utf-8"))
    return key, _check_size(key, len(text), text.decode("utf-8", "replace"))


def _inflate(key: str, data: bytes, limit: int, encoding: str) -> tuple[int, str | None]:
    """(size, text) of compressed text, inflating at most limit + 1 bytes (a zip bomb stops there)."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise PngTextError(f"the PNG's {key!r} text is damaged: {error}") from error
    if len(text) > limit:
        return len(text), None
    return len(text), text.decode(encoding, "replace")
