"""A1111's batch grid (issue 25 item 8): with the `return_grid` option on, a job of several images gives
the grid first in the API's images (A1111's layout: rows = round(sqrt(count)) or the `n_rows` option),
`index_of_first_image` 1; `grid_save` saves it to outputs/txt2img-grids/<date>/."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from studio.service.container import build_services
from studio.service.grids import grid_rows
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api

API = "/sdapi/v1"
JOB = {"prompt": "a red circle on a blue background", "sampler_name": "Euler", "steps": 2, "seed": 21, "width": 64,
       "height": 64, "save_images": True}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    root = tmp_path_factory.mktemp("grids")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", styles_file=root / "styles.csv")
    app = FastAPI()
    app.include_router(build_api(build_services(settings), AccessPolicy()))
    with TestClient(app) as client:
        yield client, root / "outputs"


def decoded(response) -> tuple[list[np.ndarray], dict]:
    assert response.status_code == 200, response.text
    images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in response.json()["images"]]
    return images, json.loads(response.json()["info"])


def grids(outputs: Path) -> list[Path]:
    return sorted((outputs / "txt2img-grids").rglob("*.png"))


def test_a1111s_row_rule():
    assert [grid_rows(n, 1) for n in (2, 3, 4, 5, 9)] == [1, 2, 2, 2, 3]  # round(sqrt(n))
    assert grid_rows(4, 2, 0) == 2 and grid_rows(6, 1, 3) == 3 and grid_rows(2, 1, 5) == 2


def test_grids_are_off_by_default_and_options_turn_them_on(served):
    client, outputs = served
    options = client.get(f"{API}/options").json()
    assert (options["return_grid"], options["grid_save"], options["n_rows"]) == (False, False, -1)
    images, info = decoded(client.post(f"{API}/txt2img", json={**JOB, "batch_size": 2}))
    assert len(images) == 2 and info["index_of_first_image"] == 0 and not grids(outputs)

    assert client.post(f"{API}/options", json={"return_grid": True, "grid_save": True}).status_code == 200
    images, info = decoded(client.post(f"{API}/txt2img", json={**JOB, "batch_size": 2, "n_iter": 2}))
    assert len(images) == 5 and info["index_of_first_image"] == 1
    assert len(info["all_seeds"]) == 4 and len(info["infotexts"]) == 5
    grid, cells = images[0], images[1:]
    assert grid.shape == (128, 128, 3)  # 4 images: 2 rows x 2 columns
    for index, cell in enumerate(cells):
        row, col = divmod(index, 2)
        assert np.array_equal(grid[row * 64:(row + 1) * 64, col * 64:(col + 1) * 64], cell)
    (saved,) = grids(outputs)
    assert np.array_equal(np.asarray(Image.open(saved).convert("RGB")), grid)
    assert "Seed: 21," in Image.open(saved).info["parameters"]  # the first image's parameters, as A1111

    images, _ = decoded(client.post(f"{API}/txt2img", json={**JOB, "batch_size": 3}))
    assert images[0].shape == (128, 128, 3) and images[0][64:, 64:].max() == 0  # 2 x 2, the empty spot black
    images, info = decoded(client.post(f"{API}/txt2img", json=JOB))
    assert len(images) == 1 and info["index_of_first_image"] == 0  # one image: no grid


def test_grid_save_alone_saves_without_returning(served):
    client, outputs = served
    assert client.post(f"{API}/options", json={"return_grid": False, "grid_save": True, "n_rows": 1}).status_code == 200
    before = len(grids(outputs))
    images, _ = decoded(client.post(f"{API}/txt2img", json={**JOB, "batch_size": 2}))
    assert len(images) == 2 and len(grids(outputs)) == before + 1
    assert Image.open(grids(outputs)[-1]).size == (128, 64)  # n_rows 1: one row
    decoded(client.post(f"{API}/txt2img", json={**JOB, "batch_size": 2, "save_images": False}))
    assert len(grids(outputs)) == before + 1  # save_images false: no grid saved either (A1111's do_not_save_grid)
