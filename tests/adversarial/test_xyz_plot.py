"""X/Y/Z plot under attack (issue 22 §8, §9): ranges whose size is a cost bomb, and bad script_args
that must never count against the extension.

A range's size is counted arithmetically and refused over the 256-cell cap before any value list is
built: the memory a refusal may use is bounded (tracemalloc peak) whatever the range says."""
from __future__ import annotations

import tracemalloc
from typing import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from studio.service.container import build_services
from studio.settings import PROJECT_DIR, Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.adversarial.conftest import Tally, assert_handled

API = "/sdapi/v1"
FAST = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 5, "save_images": False}
REFUSAL_PEAK = 8 * 2**20  # bytes a refused plot may allocate (a 3-million value list alone is ~100 MB)


@pytest.fixture(scope="module")
def xyz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("xyz")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs",
                        extensions_dir=PROJECT_DIR / "extensions", cache_dir=root / "cache")
    app = FastAPI()
    app.include_router(build_api(build_services(settings), AccessPolicy()))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def plot(client: TestClient, *script_args: object):
    return client.post(f"{API}/txt2img", json={**FAST, "script_name": "X/Y/Z plot", "script_args": list(script_args)})


# Ordered from the cheapest bomb: on code that expands first, the first case already fails its
# memory bound without the multi-gigabyte ones being reached.
BOMBS = [
    ("Seed", "1-3000000"),
    ("Seed", "1-4000000000"),
    ("Steps", "1-100 (+2), 1-4000000000"),
    ("Seed", "1-10 [4000000000]"),
    ("CFG Scale", "1-30 (+0.0000001)"),
    ("Seed", "4000000000-1 (-1)"),
    ("Seed", ", ".join(str(n) for n in range(300))),
    ("Prompt S/R", ", ".join(["red"] + [f"v{n}" for n in range(300)])),
]


@pytest.mark.parametrize("axis_type, values", BOMBS, ids=[f"{t}:{v[:24]}" for t, v in BOMBS])
def test_a_range_over_the_cap_is_refused_before_it_is_expanded(xyz_api, axis_type, values):
    tracemalloc.start()
    try:
        response = plot(xyz_api, axis_type, values)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_handled(response, Tally("X/Y/Z plot"))
    assert response.status_code == 422 and "256" in response.json()["detail"], response.text
    assert peak < REFUSAL_PEAK, f"refusing {values[:40]!r} allocated {peak / 2**20:.0f} MB"


def test_the_product_of_three_axes_is_refused_before_the_cells_are_listed(xyz_api):
    tracemalloc.start()
    try:
        response = plot(xyz_api, "Seed", "1-200", "Steps", "1-200", "CFG Scale", "1-200")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_handled(response, Tally("X/Y/Z plot"))
    assert response.status_code == 422 and "8000000" in response.json()["detail"] and "256" in response.json()["detail"]
    assert peak < REFUSAL_PEAK


HOSTILE_ARGS = [("Steps", "1e999")] * 3 + [("Steps", "-1e999"), ("Seed", "nan"), ("CFG Scale", "inf"),
                                          ("Var. seed", "1e999"), ("Steps", "1e999-1e999"), ("Seed", "1e308")]


def test_bad_script_args_never_count_against_the_extension(xyz_api):
    tally = Tally("X/Y/Z plot")
    for axis_type, values in HOSTILE_ARGS:
        response = plot(xyz_api, axis_type, values)
        assert_handled(response, tally)
        assert response.status_code == 422, response.text
        assert "failed in" not in response.json()["detail"]  # the caller's error, not the extension's
    good = plot(xyz_api, "Seed", "11, 12")  # after more than MAX_FAILURES bad requests
    tally.tried(good.status_code == 200)
    assert good.status_code == 200, good.text
    assert len(good.json()["images"]) == 3  # the grid and its two cells


def test_a_range_at_the_cap_still_plots_its_values_count(xyz_api):
    from extensions.xyz_plot.axes import count_values

    assert count_values(["1-4000000000"]) == 4000000000
    assert count_values(["1-100 (+2)"]) == 50
    assert count_values(["1-10 [5]"]) == 5
    assert count_values(["5-1", "7"]) == 6
    assert count_values(["0-1 (+0.25)"]) == 5
