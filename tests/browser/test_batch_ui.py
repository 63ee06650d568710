"""Folder batches in the browser: img2img's Batch (folder in, folder out, with a mask folder) and
Extras' "Batch from directory"; a folder that does not exist is a visible message; the Script
dropdown offers the Prompt matrix."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.conftest import screenshot, started_server, studio_page
from tests.browser.test_sources_ui import toast
from tests.browser.test_txt2img_ui import set_number

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def batch_server(tmp_path_factory: pytest.TempPathFactory):
    """The server's own temp folder is elsewhere, so the test folders (under pytest's) are outside
    every folder the page may load files from: results saved there must still show."""
    root = tmp_path_factory.mktemp("batch-ui")
    (root / "server-tmp").mkdir()
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(root / "server-tmp")
    try:
        with started_server(root) as running:
            yield running
    finally:
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old


def pictures(folder: Path, colours: dict[str, str], size: int = 64) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in colours.items():
        Image.new("RGB", (size, size), colour).save(folder / name)


def test_img2img_batch_runs_a_folder_into_a_folder(browser, batch_server, tmp_path):
    pictures(tmp_path / "in", {"a.png": "red", "b.png": "blue"})
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    (tmp_path / "masks").mkdir()
    mask.save(tmp_path / "masks" / "a.png")
    mask.save(tmp_path / "masks" / "b.png")
    with studio_page(browser, batch_server.url) as page:
        page.click("button[role=tab]:has-text('img2img')")
        page.fill("#img2img_prompt textarea", "a circle")
        set_number(page, "img2img_steps", "2")
        page.fill("#img2img_seed input", "9")
        page.click("#img2img_batch")  # the accordion
        page.fill("#img2img_batch_input_dir textarea, #img2img_batch_input_dir input", str(tmp_path / "nowhere"))
        page.click("#img2img_batch_run")
        toast(page, "input_dir:")  # a folder that is not there: said, nothing runs

        page.fill("#img2img_batch_input_dir textarea, #img2img_batch_input_dir input", str(tmp_path / "in"))
        page.fill("#img2img_batch_output_dir textarea, #img2img_batch_output_dir input", str(tmp_path / "out"))
        page.fill("#img2img_batch_mask_dir textarea, #img2img_batch_mask_dir input", str(tmp_path / "masks"))
        page.click("#img2img_batch_run")
        page.wait_for_function("document.querySelector('#img2img_batch_status')?.innerText.includes('Saved 2 image(s)')",
                               timeout=180_000)
        sources = page.evaluate("[...new Set([...document.querySelectorAll('#img2img_gallery img')].map(i => i.src))]")
        assert len(sources) == 2  # both results in the tab's gallery
        assert "Seed: 9" in page.locator("#img2img_infotext textarea").input_value()
        screenshot(page, "img2img_batch")
    saved = sorted(path for path in (tmp_path / "out").glob("*.png") if not path.stem.endswith(("-init", "-mask")))
    assert len(saved) == 2
    for path in saved:
        text = Image.open(path).text["parameters"]
        assert text.startswith("a circle\n") and "Steps: 2" in text and "Mask blur" in text


def test_extras_batch_from_directory(browser, batch_server, tmp_path):
    pictures(tmp_path / "in", {"a.png": "green", "b.jpg": "yellow"}, size=32)
    with studio_page(browser, batch_server.url) as page:
        page.click("button[role=tab]:has-text('Extras')")
        page.click("button[role=tab]:has-text('Batch from directory')")
        page.fill("#extras_batch_input_dir textarea, #extras_batch_input_dir input", str(tmp_path / "in"))
        page.fill("#extras_batch_output_dir textarea, #extras_batch_output_dir input", str(tmp_path / "out"))
        set_number(page, "extras_upscaling_resize", "2")
        page.click("#extras_generate")
        page.wait_for_function("document.querySelector('#extras_info textarea')?.value.includes('Saved 2 image(s)')",
                               timeout=120_000)
        screenshot(page, "extras_folder")
    assert sorted(Image.open(path).size for path in (tmp_path / "out").glob("*.png")) == [(64, 64), (64, 64)]


def test_prompt_matrix_and_prompts_from_textbox_from_the_script_dropdown(browser, batch_server):
    from tests.browser.test_upscale_ui import pick

    with studio_page(browser, batch_server.url) as page:
        page.fill("#txt2img_prompt textarea", "a circle|red")
        set_number(page, "txt2img_steps", "2")
        page.fill("#txt2img_seed input", "5")
        pick(page, "#txt2img_script", "Prompt matrix")
        page.click("#txt2img_generate")
        page.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('Saved the grid')",
                               timeout=120_000)
        page.wait_for_function("document.querySelectorAll('#txt2img_gallery img').length >= 3")  # grid + 2
        screenshot(page, "prompt_matrix")
        [grid] = list((batch_server.outputs / "txt2img-grids").rglob("*.png"))
        width, height = Image.open(grid).size
        assert width == 128 and height > 64  # two cells side by side under their "red" labels

        page.fill("#txt2img_prompt textarea", "")
        pick(page, "#txt2img_script", "Prompts from file or textbox")
        box = page.locator("#txt2img_script_panel").get_by_label("List of prompt inputs")
        box.fill('a red circle\n--prompt "a blue square" --steps ten')
        page.click("#txt2img_generate")
        toast(page, "line 2")  # the bad line is named; nothing ran
        box.fill('a red circle\n--prompt "a blue square" --seed 77')
        page.click("#txt2img_generate")
        page.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('2 line(s), 2 image(s)')",
                               timeout=120_000)
        page.locator("#txt2img_gallery img").first.wait_for()
        screenshot(page, "prompts_from_textbox")
