"""Outputs history: newest first, paginated, searched by infotext, deleted only inside outputs/."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from studio.records import storage
from studio.records.history import HistoryError, HistoryIndex


def make_outputs(root: Path, count: int, mode: str = "txt2img") -> list[Path]:
    directory = root / f"{mode}-images" / "2026-12-02"
    paths = []
    for i in range(count):
        text = f"a {'red' if i % 2 else 'blue'} circle number {i}\nSteps: 3, Sampler: Euler, Seed: {i}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{i:05d}-{i}.png"  # written as save_png writes them, without its fsync
        Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(path, pnginfo=storage.png_info(text, None))
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
        paths.append(path)
    return paths


def test_lists_newest_first_with_pages_and_search(tmp_path):
    paths = make_outputs(tmp_path, 30)
    extras = make_outputs(tmp_path, 1, "extras")
    os.utime(extras[0], (2_000_000, 2_000_000))
    storage.save_companion(Image.new("L", (8, 8)), paths[0], "mask")  # companions are not listed
    index = HistoryIndex(tmp_path)
    first = index.page(1, per_page=10)
    assert (first.total, first.pages) == (31, 4)
    assert first.items[0].path == extras[0] and first.items[0].mode == "extras"
    assert [i.path for i in first.items[1:]] == paths[::-1][:9]
    assert index.page(4, per_page=10).items[-1].path == paths[0]
    red = index.page(1, per_page=100, query="RED circle")
    assert red.total == 15 and all("red" in item.infotext for item in red.items)
    sevens = index.page(1, query="number 7")  # every word must occur
    assert sorted(item.path for item in sevens.items) == sorted([paths[7], paths[17], paths[27]])


def test_delete_removes_the_png_and_its_companions_only_inside_outputs(tmp_path):
    outputs = tmp_path / "outputs"
    paths = make_outputs(outputs, 2)
    mask = storage.save_companion(Image.new("L", (8, 8)), paths[0], "mask")
    index = HistoryIndex(outputs)
    removed = index.delete(paths[0])
    assert set(removed) == {paths[0].resolve(), mask.resolve()} and paths[1].exists()
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (4, 4)).save(outside)
    for bad in (outside, outputs / ".." / "elsewhere.png", "../elsewhere.png", outputs, paths[1].with_suffix(".json")):
        with pytest.raises(HistoryError):
            index.delete(bad)
    link = outputs / "txt2img-images" / "link.png"
    link.symlink_to(outside)
    with pytest.raises(HistoryError, match="not inside the outputs folder"):
        index.delete(link)
    assert outside.exists()


def test_listing_follows_new_and_deleted_files_and_leaves_links_out(tmp_path):
    paths = make_outputs(tmp_path, 3)
    index = HistoryIndex(tmp_path)
    index.FRESH_SECONDS = 0  # trust folder mtimes at once (the files here are dated in the past)
    assert index.page(1).total == 3
    newer = make_outputs(tmp_path, 1, "img2img")[0]
    os.utime(newer, (3_000_000, 3_000_000))
    later = tmp_path / "txt2img-images" / "2026-12-03" / "00000-9.png"
    later.parent.mkdir()
    storage.save_png(Image.new("RGB", (4, 4)), later.parent, 9, "a later one")
    listed = [item.path for item in index.page(1).items]
    assert listed[0].name == "00000-9.png" and listed[1] == newer and len(listed) == 5
    index.delete(paths[1])
    (tmp_path / "txt2img-images" / "2026-12-02" / "link.png").symlink_to(paths[0])
    assert [item.path for item in index.page(1).items][2:] == [paths[2], paths[0]]  # no link, no deleted file


def test_search_reads_only_the_text_chunks_never_the_pixels(tmp_path):
    """A PNG whose pixel data cannot be decoded is still found by its parameters (so a search
    over thousands of files never decodes an image; benchmarks/history_listing.py times 5,000)."""
    import struct
    import zlib

    [path] = make_outputs(tmp_path, 1)
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4:at + 4 + length] = b"\xff" * length  # not zlib data any more
    data[at + 4 + length:at + 8 + length] = struct.pack(">I", zlib.crc32(bytes(data[at:at + 4 + length])))
    path.write_bytes(bytes(data))
    with pytest.raises(OSError):
        Image.open(path).load()
    found = HistoryIndex(tmp_path).page(1, query="blue circle number 0")
    assert [item.path for item in found.items] == [path]
