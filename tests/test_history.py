"""Outputs history: newest first, paginated, searched by infotext, deleted only inside outputs/."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from studio import storage
from studio.history import HistoryError, HistoryIndex


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


def test_five_thousand_files_page_without_decoding_all(tmp_path, capsys):
    make_outputs(tmp_path, 5000)
    index = HistoryIndex(tmp_path)
    start = time.perf_counter()
    page = index.page(1, per_page=24)
    listed = time.perf_counter() - start
    assert page.total == 5000 and len(page.items) == 24 and page.items[0].infotext.endswith("Seed: 4999")
    start = time.perf_counter()
    found = index.page(1, query="number 4321")
    searched = time.perf_counter() - start
    assert found.total == 1
    with capsys.disabled():
        print(f"\nhistory of 5000 files: first page {listed:.2f}s, first search {searched:.2f}s")
