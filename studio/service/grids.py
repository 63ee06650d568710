"""A1111's batch grid: with `return_grid` on, a job of several images also gives one grid of them, first
in the results (the UI gallery and the API's `images`, as A1111); with `grid_save` on it is saved to
outputs/txt2img-grids/<date>/ (img2img-grids for img2img), as A1111's `outdir_grids`.

Layout as A1111's images.image_grid: rows = the `n_rows` option when > 0, the batch size when 0,
else round(sqrt(count)); columns = ceil(count / rows); cells in reading order on black.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
from pathlib import Path
from typing import Sequence

from PIL import Image

from studio.records import storage
from studio.service.results import JobResult, SavedImage


def grid_rows(count: int, batch_size: int, n_rows: int = -1) -> int:
    rows = n_rows if n_rows > 0 else batch_size if n_rows == 0 else round(math.sqrt(count))
    return max(1, min(rows, count))


def image_grid(images: Sequence[Image.Image], batch_size: int = 1, n_rows: int = -1) -> Image.Image:
    rows = grid_rows(len(images), batch_size, n_rows)
    cols = math.ceil(len(images) / rows)
    width, height = images[0].size
    grid = Image.new("RGB", (cols * width, rows * height), "black")
    for index, image in enumerate(images):
        grid.paste(image.convert("RGB"), (index % cols * width, index // cols * height))
    return grid


def with_grid(result: JobResult, outputs_dir: Path, show: bool, save: bool, n_rows: int = -1) -> JobResult:
    """`result` with the grid first when `show`; saved when `save` (the job saves its images). Nothing
    changes for one image or an interrupted job with fewer than two."""
    made = [item for item in result.images if not item.grid]
    if len(made) < 2 or not (show or save):
        return result
    grid = image_grid([item.image for item in made], result.request.batch_size, n_rows)
    text = made[0].infotext  # A1111: the first image's parameters (its main prompt)
    path = None
    if save:
        folder = "txt2img-grids" if result.request.mode == "txt2img" else "img2img-grids"
        path = storage.save_png(grid, outputs_dir / folder / datetime.date.today().isoformat(), made[0].seed, text)
    if not show:
        return result
    item = SavedImage(grid, path, text, -1, {}, grid=True)
    return dataclasses.replace(result, images=[item, *result.images])
