"""A1111's "Prompts from file or textbox" and "Prompt matrix" scripts, over HTTP as A1111 clients
send them (`script_name` + positional `script_args`), and their parsing."""
from __future__ import annotations

import base64
import io
import json
from typing import Iterator

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from studio.service.container import build_services
from studio.settings import PROJECT_DIR, Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.browser.conftest import ARTIFACTS

API = "/sdapi/v1"
BASE = {"prompt": "", "steps": 2, "width": 64, "height": 64, "seed": 21, "sampler_name": "Euler"}
FROM_FILE = "Prompts from file or textbox"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("scripts")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs",
                        extensions_dir=PROJECT_DIR / "extensions", cache_dir=root / "cache",
                        styles_file=root / "styles.csv")
    app = FastAPI()
    app.include_router(build_api(build_services(settings), AccessPolicy()))
    with TestClient(app) as test_client:
        yield test_client


def decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


def test_prompts_from_textbox_runs_one_generation_per_line_with_its_overrides(client):
    text = ('a red circle\n\n--prompt "a blue square" --negative_prompt green --steps 3 --seed 7 --cfg_scale 5 '
            '--subseed 4 --subseed_strength 0.5\n')
    body = {**BASE, "script_name": FROM_FILE.lower(), "script_args": [False, False, "start", text]}
    response = client.post(f"{API}/txt2img", json=body)
    assert response.status_code == 200, response.text
    infotexts = json.loads(response.json()["info"])["infotexts"]
    assert len(response.json()["images"]) == 2 and len(infotexts) == 2
    assert infotexts[0].startswith("a red circle\n") and "Seed: 21" in infotexts[0] and "Steps: 2" in infotexts[0]
    second = infotexts[1]
    assert second.startswith("a blue square\nNegative prompt: green\n")
    assert all(part in second for part in ("Steps: 3", "Seed: 7", "CFG scale: 5", "Variation seed: 4",
                                           "Variation seed strength: 0.5"))


def test_a_line_is_inserted_at_the_start_or_end_of_the_tab_prompt_and_seeds_iterate(client):
    body = {**BASE, "prompt": "watercolor", "script_name": FROM_FILE,
            "script_args": [True, False, "end", "a cat\na dog"]}  # iterate the seed every line
    infotexts = json.loads(client.post(f"{API}/txt2img", json=body).json()["info"])["infotexts"]
    assert infotexts[0].startswith("watercolor a cat\n") and "Seed: 21," in infotexts[0]
    assert infotexts[1].startswith("watercolor a dog\n") and "Seed: 22," in infotexts[1]


@pytest.mark.parametrize(("text", "message"), [
    ("a cat\n--prompt dog --steps ten", "line 2 (--prompt dog --steps ten): --steps must be a whole number"),
    ("--prompt dog --colour red", "line 1 (--prompt dog --colour red): unknown option --colour"),
    ("ok\nok\n--outpath_samples /tmp", "line 3 (--outpath_samples /tmp): --outpath_samples: output folders cannot"),
    ('--prompt "unclosed', "line 1 (--prompt \"unclosed): cannot split it into options"),
    ("--tiling true", "--tiling true: tiling is not supported here"),
    ("--sampler_name Nope", "unknown sampler 'Nope'"),
    ("--width 65", "line 1 (--width 65): width"),
    ("\n  \n", "the list of prompts is empty"),
])
def test_a_bad_line_is_a_422_naming_the_line_and_nothing_runs(client, text, message):
    response = client.post(f"{API}/txt2img", json={**BASE, "script_name": FROM_FILE,
                                                    "script_args": [False, False, "start", text]})
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_prompts_from_file_takes_the_older_three_argument_layout(client):
    body = {**BASE, "script_name": FROM_FILE, "script_args": [False, False, "--prompt one --sampler_index 0"]}
    response = client.post(f"{API}/txt2img", json=body)
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["info"])["infotexts"][0].startswith("one\n")
    bad = client.post(f"{API}/txt2img", json={**BASE, "script_name": FROM_FILE, "script_args": [1]})
    assert bad.status_code == 422 and "checkbox_iterate" in bad.json()["detail"]


def test_prompt_matrix_makes_every_combination_and_a_labelled_grid(client):
    body = {**BASE, "prompt": "a circle|red|on blue", "script_name": "Prompt matrix",
            "script_args": [False, False, "positive", "comma", 0]}
    response = client.post(f"{API}/txt2img", json=body)
    assert response.status_code == 200, response.text
    grid, *cells = [decoded(item) for item in response.json()["images"]]
    infotexts = json.loads(response.json()["info"])["infotexts"]
    assert len(cells) == 4
    assert [text.split("\n")[0] for text in infotexts[1:]] == ["a circle", "a circle, red", "a circle, on blue",
                                                               "a circle, red, on blue"]
    assert all("Seed: 21," in text for text in infotexts)  # one seed for all, as A1111's default
    assert infotexts[0] == infotexts[1]  # the grid carries the first image's parameters
    # 2 x 2 cells (red over the columns, on blue down the rows) under labels and beside them
    assert grid.width > 128 and grid.height > 128
    top, left = grid.height - 128, grid.width - 128
    for index, cell in enumerate(cells):
        row, column = divmod(index, 2)
        placed = grid.crop((left + 64 * column, top + 64 * row, left + 64 * column + 64, top + 64 * row + 64))
        assert np.array_equal(np.asarray(placed), np.asarray(cell))
    assert np.asarray(grid.crop((left, 0, grid.width, top))).min() < 100  # "red" over the columns
    assert np.asarray(grid.crop((0, top, left, grid.height))).min() < 100  # "on blue" left of the rows
    grid.save(ARTIFACTS / "prompt_matrix_grid.png") if ARTIFACTS.is_dir() else None


def test_prompt_matrix_different_seeds_negative_prompt_and_put_at_start(client):
    body = {**BASE, "prompt": "a circle", "negative_prompt": "blurry|dark", "script_name": "Prompt matrix",
            "script_args": [True, True, "negative", "space", 4]}
    response = client.post(f"{API}/txt2img", json=body)
    assert response.status_code == 200, response.text
    infotexts = json.loads(response.json()["info"])["infotexts"][1:]
    assert ["Negative prompt: blurry\n" in infotexts[0], "Negative prompt: dark blurry\n" in infotexts[1]] == [True, True]
    assert "Seed: 21," in infotexts[0] and "Seed: 22," in infotexts[1]
    grid, *cells = [decoded(item) for item in response.json()["images"]]
    right = grid.crop((grid.width - 64, grid.height - 64, grid.width, grid.height))
    left = grid.crop((grid.width - 132, grid.height - 64, grid.width - 68, grid.height))
    assert np.array_equal(np.asarray(right), np.asarray(cells[1]))
    assert np.array_equal(np.asarray(left), np.asarray(cells[0]))  # two columns with a 4 px margin between
    assert np.asarray(grid)[-64:, grid.width - 68: grid.width - 64].min() == 255  # the margin is blank


@pytest.mark.parametrize(("args", "prompt", "message"), [
    ([False, False, "positive", "comma", 0], "no parts here", "separate the parts of the prompt with |"),
    ([False, False, "sideways"], "a|b", "prompt_type must be 'positive' or 'negative'"),
    ([False, False, "positive", "tab"], "a|b", "variations_delimiter must be 'comma' or 'space'"),
    ([False, False, "positive", "comma", 0], "|".join("abcdefghij"), "at most 9 parts"),
])
def test_prompt_matrix_refuses_what_it_cannot_do(client, args, prompt, message):
    response = client.post(f"{API}/txt2img", json={**BASE, "prompt": prompt, "script_name": "Prompt matrix",
                                                    "script_args": args})
    assert response.status_code == 422 and message in response.json()["detail"], response.text


@pytest.mark.parametrize(("name", "args"), [
    (FROM_FILE, [False, False, {"start": 1}, "a cat"]),
    (FROM_FILE, [False, False, "start", {"text": "a cat"}]),
    (FROM_FILE, [False, False, "start", ["a cat"]]),
    (FROM_FILE, "a cat"),
    ("Prompt matrix", [False, False, ["positive"]]),
    ("Prompt matrix", [False, False, "positive", "comma", "wide"]),
    ("Prompt matrix", [False, False, "positive", "comma", float("1e308")]),
])
def test_hostile_script_args_are_a_422_and_the_script_stays_enabled(client, name, args):
    body = json.dumps({**BASE, "prompt": "a|b", "script_name": name, "script_args": args})
    response = client.post(f"{API}/txt2img", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    again = client.post(f"{API}/txt2img", json={**BASE, "prompt": "a|b", "script_name": "Prompt matrix",
                                                 "script_args": [False, False, "positive", "comma", 0]})
    assert again.status_code == 200, again.text
