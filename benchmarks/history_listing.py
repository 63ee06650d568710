"""Outputs history on many files: list, page and search 5,000 PNGs (issue 15: "works on thousands
of files without loading them all"). Written to benchmarks/history_results.json.

Run: PYTHONPATH=. python benchmarks/history_listing.py [COUNT]   (default 5000; about a minute,
most of it writing the PNGs)

The PNGs are 64x64 with an A1111 infotext, spread over outputs/txt2img-images/<day>/ folders like
real outputs. Timed (median of 5 after one untimed call unless "cold"):
- list_page_1 / list_page_last: a page of 24 newest-first (what the History tab shows);
- list_page_1_cold: the first listing by a fresh index (nothing cached);
- search_cold / search_warm: a search over every infotext, first by a fresh index, then again;
- after_new_file: page 1 after one new image was saved into a folder of 500 (the listing notices it).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.records import storage  # noqa: E402
from studio.records.history import HistoryIndex  # noqa: E402

HERE = Path(__file__).resolve().parent
DAYS = 10


def make_outputs(root: Path, count: int) -> None:
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    for i in range(count):
        folder = root / "txt2img-images" / f"2026-11-{1 + i % DAYS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = ("red", "blue", "green", "purple")[i % 4]
        text = (f"a {colour} circle number {i}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
                f"CFG scale: 7, Seed: {i}, Size: 64x64, Model: studio-default-64px")
        path = folder / f"{i:05d}-{i}.png"
        image.save(path, pnginfo=storage.png_info(text, {"request": {"prompt": text}}))
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))


def timed(call, repeat: int = 5) -> float:
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1000, 2)


def once(call) -> float:
    start = time.perf_counter()
    call()
    return round((time.perf_counter() - start) * 1000, 2)


def main(count: int = 5000) -> dict:
    with TemporaryDirectory() as tmp:
        root = Path(tmp) / "outputs"
        start = time.perf_counter()
        make_outputs(root, count)
        written = time.perf_counter() - start
        time.sleep(HistoryIndex.FRESH_SECONDS)  # a folder read right after it changed is read again once
        results: dict = {"files": count, "folders": DAYS, "writing_pngs_s": round(written, 1),
                         "load_average_1m": round(os.getloadavg()[0], 1)}
        results["list_page_1_cold_ms"] = once(lambda: HistoryIndex(root).page(1, 24))
        index = HistoryIndex(root)
        first = index.page(1, 24)
        assert first.total == count and first.items[0].path.name == f"{count - 1:05d}-{count - 1}.png"
        results["list_page_1_ms"] = timed(lambda: index.page(1, 24))
        results["list_page_last_ms"] = timed(lambda: index.page(first.pages, 24))
        fresh = HistoryIndex(root)
        results["search_cold_ms"] = once(lambda: fresh.page(1, 24, "purple circle"))
        found = fresh.page(1, 24, "purple circle")
        assert found.total == count // 4, found.total
        results["search_warm_ms"] = timed(lambda: fresh.page(1, 24, "purple circle"))
        new = storage.save_png(Image.new("RGB", (64, 64)), root / "txt2img-images" / "2026-11-01", 1, "a new one")
        results["after_new_file_ms"] = once(lambda: index.page(1, 24))  # rereads that folder (500 files)
        assert index.page(1, 24).items[0].path == new
    return results


if __name__ == "__main__":
    figures = main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
    print(json.dumps(figures, indent=2))
    (HERE / "history_results.json").write_text(json.dumps(figures, indent=2) + "\n")
