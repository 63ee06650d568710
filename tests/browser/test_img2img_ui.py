"""img2img and Inpaint tabs driven in Chromium: upload, strength, paint a mask stroke, generate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy.ndimage import binary_dilation

from studio.records.pnginfo import read_generation_info
from tests.browser.conftest import screenshot
from tests.browser.test_txt2img_ui import generate, set_number

pytestmark = pytest.mark.browser


@pytest.fixture
def source_png(tmp_path: Path) -> Path:
    image = Image.new("RGB", (64, 64), (40, 60, 200))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(220, 30, 30))
    path = tmp_path / "source.png"
    image.save(path)
    return path


def open_tab(page, title: str) -> None:
    page.click(f"button[role=tab]:has-text('{title}')")
    page.wait_for_timeout(800)  # let the tab's canvas lay out before uploading into it


def test_img2img_upload_strength_generate(page, server, source_png):
    open_tab(page, "img2img")
    page.locator("#img2img_image input[type=file]").set_input_files(str(source_png))
    page.wait_for_selector("#img2img_image img")
    set_number(page, "img2img_steps", "10")
    set_number(page, "img2img_denoising_strength", "0.3")
    page.wait_for_function("document.querySelector('#img2img_steps_note')?.innerText.includes('3 of 10')")
    before = set(server.outputs.rglob("*.png"))
    generate(page, "img2img", "a red circle on a blue background", 321)
    screenshot(page, "img2img")
    saved = [p for p in set(server.outputs.rglob("*.png")) - before if "-" not in p.stem.split("-", 1)[1]]
    assert len(saved) == 1
    params = read_generation_info(saved[0])["params"]
    assert (params["Mode"], params["Denoising strength"], params["Steps"]) == ("img2img", "0.3", "10")
    init = Image.open(saved[0].with_name(f"{saved[0].stem}-init.png"))
    assert np.array_equal(np.asarray(init.convert("RGB")), np.asarray(Image.open(source_png).convert("RGB")))


def test_inpaint_mouse_stroke_leaves_far_pixels_unchanged(page, server, source_png):
    open_tab(page, "Inpaint")
    page.locator("#inpaint_editor input[type=file]").set_input_files(str(source_png))
    page.wait_for_timeout(1500)
    page.locator("#inpaint_editor button[aria-label='Brush']").first.click()
    canvas = page.locator("#inpaint_editor canvas").first
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 15, cy)
    page.mouse.down()
    page.mouse.move(cx + 15, cy, steps=12)
    page.mouse.up()
    before = set(server.outputs.rglob("*.png"))
    generate(page, "inpaint", "a green circle on a blue background", 55, steps="6")
    screenshot(page, "inpaint")
    created = set(server.outputs.rglob("*.png")) - before
    output = next(p for p in created if p.stem.count("-") == 1)
    mask = np.asarray(Image.open(output.with_name(f"{output.stem}-mask.png")).convert("L")) > 0
    assert mask.any(), "the stroke did not reach the mask"
    assert mask.shape == (64, 64)
    far = ~binary_dilation(mask, structure=np.ones((9, 9)))  # the mask grown by the blur radius (4)
    result = np.asarray(Image.open(output).convert("RGB"))
    source = np.asarray(Image.open(source_png).convert("RGB"))
    assert far.sum() > 1000
    assert np.array_equal(result[far], source[far])
    assert read_generation_info(output)["params"]["Mode"] == "inpaint"
