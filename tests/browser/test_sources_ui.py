"""img2img and Inpaint sources as a new user meets them (issue 18): a missing or broken source
image is a clear message, never a silent txt2img picture or an internal error."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.browser.conftest import screenshot
from tests.browser.test_img2img_ui import open_tab

pytestmark = pytest.mark.browser


def toast(page, text: str):
    message = page.locator(".toast-body").filter(has_text=text)
    message.first.wait_for(timeout=30_000)
    return message


def close_toasts(page) -> None:
    page.evaluate("document.querySelectorAll('.toast-close').forEach((button) => button.click())")


def test_img2img_and_inpaint_without_an_image_say_so_and_save_nothing(page, server, tmp_path: Path):
    before = set(server.outputs.rglob("*.png"))
    open_tab(page, "img2img")
    page.fill("#img2img_prompt textarea", "a red circle")
    page.click("#img2img_generate")
    toast(page, "img2img needs a source image")
    screenshot(page, "img2img-no-image")
    close_toasts(page)

    # Inpaint: upload, then the editor's own "Clear canvas" button, then Generate.
    white = tmp_path / "white.png"
    Image.new("RGB", (64, 64), "white").save(white)
    open_tab(page, "Inpaint")
    page.locator("#inpaint_editor input[type=file]").set_input_files(str(white))
    page.wait_for_timeout(1500)
    page.locator("#inpaint_editor button[aria-label='Clear canvas']").click()
    page.wait_for_timeout(500)
    page.fill("#inpaint_prompt textarea", "a red circle")
    page.click("#inpaint_generate")
    toast(page, "Inpaint needs an image")
    page.wait_for_timeout(1000)  # a run that wrongly started would have saved by now (3 steps, 64 px)
    assert set(server.outputs.rglob("*.png")) == before


def test_a_text_file_named_png_is_one_clear_sentence_in_img2img_and_png_info(page, server, tmp_path: Path):
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a picture")
    log_start = len((server.root / "server.log").read_text())
    before = set(server.outputs.rglob("*.png"))

    open_tab(page, "img2img")
    page.locator("#img2img_image input[type=file]").set_input_files(str(fake))
    page.wait_for_timeout(500)
    page.fill("#img2img_prompt textarea", "a red circle")
    page.click("#img2img_generate")
    message = toast(page, "not an image: notes.png")
    text = message.first.inner_text()
    assert "preprocess" not in text and "textbox" not in text, text  # not Gradio's internal error
    close_toasts(page)

    page.click("button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(fake))
    page.wait_for_function("document.querySelector('#pnginfo_warnings')?.innerText.includes('not an image: notes.png')",
                           timeout=30_000)
    screenshot(page, "pnginfo-not-an-image")
    assert page.locator("#pnginfo_parameters .error, #pnginfo_chunks .error").count() == 0  # no bare "Error" badges
    assert set(server.outputs.rglob("*.png")) == before
    assert "Traceback" not in (server.root / "server.log").read_text()[log_start:]


def test_send_to_img2img_and_inpaint_carries_every_parameter_and_the_seed_used(page, server):
    from tests.browser.test_txt2img_ui import set_number

    page.fill("#txt2img_prompt textarea", "a yellow circle on a purple background")
    page.fill("#txt2img_neg_prompt textarea", "green")
    for name, value in (("steps", "4"), ("cfg_scale", "5.5"), ("width", "64"), ("height", "96")):
        set_number(page, f"txt2img_{name}", value)
    page.click("#txt2img_sampling input")
    page.get_by_role("option", name="DDIM", exact=True).click()
    page.fill("#txt2img_seed input", "-1")  # a random seed: the one it was made with must be carried
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: ')",
                           timeout=60_000)
    infotext = page.input_value("#txt2img_infotext textarea")
    used_seed = infotext.split("Seed: ", 1)[1].split(",", 1)[0]
    assert "Sampler: DDIM" in infotext and used_seed != "-1"

    for target, editor in (("img2img", "#img2img_image img"), ("inpaint", "#inpaint_editor canvas")):
        page.click("button[role=tab]:has-text('txt2img')")
        page.click(f"#txt2img_send_{target}")
        page.wait_for_function(f"document.querySelector('#{target}_seed input')?.value === '{used_seed}'",
                               timeout=30_000)
        page.wait_for_selector(editor, timeout=30_000)
        assert page.input_value(f"#{target}_prompt textarea") == "a yellow circle on a purple background"
        assert page.input_value(f"#{target}_neg_prompt textarea") == "green"
        assert page.input_value(f"#{target}_sampling input") == "DDIM"
        numbers = {name: page.locator(f"#{target}_{name} input[type=number]").first.input_value()
                   for name in ("steps", "cfg_scale", "width", "height")}
        assert numbers == {"steps": "4", "cfg_scale": "5.5", "width": "64", "height": "96"}
    screenshot(page, "send-to-inpaint")


def test_the_inpaint_brush_is_visible_on_a_white_image(page, tmp_path: Path):
    """...and the Inpaint tab leaves the page idle (issue 25 §6): shown empty, and with the
    pointer resting on the canvas after a stroke (the editor redraws on pointer events there)."""
    import io

    import numpy as np

    from tests.browser.idle import idle_busy_seconds

    white = tmp_path / "white.png"
    Image.new("RGB", (64, 64), "white").save(white)
    open_tab(page, "Inpaint")
    busy = idle_busy_seconds(page)
    assert busy < 0.5, f"the empty Inpaint tab kept the main thread busy {busy:.2f} s of 5 s idle"
    page.locator("#inpaint_editor input[type=file]").set_input_files(str(white))
    page.wait_for_timeout(1500)
    page.locator("#inpaint_editor button[aria-label='Brush']").first.click()
    box = page.locator("#inpaint_editor canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 30, cy)
    page.mouse.down()
    page.mouse.move(cx + 30, cy, steps=15)
    page.mouse.up()
    page.mouse.move(cx, cy + 40)
    busy = idle_busy_seconds(page)
    assert busy < 0.5, f"after painting, the main thread was busy {busy:.2f} s of 5 s idle"
    page.mouse.move(box["x"] - 50, box["y"] - 50)  # the brush cursor away from the stroke
    page.wait_for_timeout(500)
    shot = Image.open(io.BytesIO(page.screenshot(clip={"x": cx - 20, "y": cy - 2, "width": 40, "height": 4})))
    screenshot(page, "inpaint-brush-on-white")
    pixels = np.asarray(shot.convert("RGB")).astype(int)
    distance_from_white = (255 - pixels).sum(axis=2).mean()
    assert distance_from_white > 100, distance_from_white  # a white brush on white was ~0
