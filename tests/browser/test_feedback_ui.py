"""Issue 25: A1111's feedback in the Output box (Time taken, queue place), Send-to behaviour and
the hints that say where files go, driven as a user does."""
from __future__ import annotations

import pytest

from tests.browser.idle import idle_busy_seconds
from tests.browser.test_txt2img_ui import generate

pytestmark = pytest.mark.browser


def test_each_job_ends_with_a1111s_time_taken_line(page, server):
    generate(page, "txt2img", "a red circle on a blue background", seed=808, steps="4")
    page.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('Time taken:')",
                           timeout=30_000)
    line = [text for text in page.inner_text("#txt2img_status").splitlines() if "Time taken" in text][0]
    assert line.startswith("Time taken: ") and line.endswith(" sec."), line


def test_the_page_stays_idle_after_every_send_to(page, server):
    """Issue 25 §6: after PNG Info → Send to txt2img the page was busy ~99 % while idle. Inpaint
    too: its editor's WebGL start-up is a burst of a few seconds in software GL, then nothing."""
    from tests.browser.test_txt2img_ui import newest_png

    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a green square on a white background", seed=606, steps="4")
    saved = newest_png(server.outputs, before)
    assert idle_busy_seconds(page) < 0.5
    for target in ("txt2img", "img2img", "inpaint"):
        page.click("button[role=tab]:has-text('PNG Info')")
        page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved))
        page.wait_for_function("document.querySelector('#pnginfo_parameters textarea')?.value.includes('Seed: 606')",
                               timeout=30_000)
        page.click(f"#pnginfo_send_{target}")
        page.wait_for_function(f"document.querySelector('#{target}_seed input')?.value === '606'", timeout=30_000)
        busy = idle_busy_seconds(page)
        assert busy < 0.5, f"after Send to {target}: the main thread was busy {busy:.2f} s of 5 s idle"


def test_a_png_without_any_parameters_says_so(page, server, tmp_path):
    """Issue 25 §15: not "no studio recipe", but no generation parameters at all."""
    from PIL import Image

    plain = tmp_path / "plain.png"
    Image.new("RGB", (32, 32), "orange").save(plain)
    page.click("button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(plain))
    page.wait_for_function("document.querySelector('#pnginfo_warnings')?.innerText.includes('generation parameters')",
                           timeout=30_000)
    text = page.inner_text("#pnginfo_warnings")
    assert "this PNG has no generation parameters" in text and "studio recipe (" not in text


def test_without_an_sdxl_model_the_refiner_panel_is_a_line_saying_where_to_put_one(page):
    """Issue 25 §3: the default model is not SDXL, so there is nothing a refiner could be."""
    assert not page.locator("#txt2img_refiner").is_visible()
    note = page.locator("#txt2img_refiner_note")
    assert note.is_visible()
    assert "SDXL" in note.inner_text() and "Stable-diffusion" in note.inner_text()


def test_empty_networks_and_upscaler_lists_say_where_files_go(page, server):
    """Issue 25 §14: folders named, and that Refresh picks new files up."""
    page.click("#txt2img_networks")
    hint = page.locator("#txt2img_networks_hint")
    hint.wait_for(timeout=30_000)
    text = hint.inner_text()
    for folder in ("Lora", "embeddings", "VAE"):
        assert str(server.root / "models" / folder) in text, text
    assert "Refresh" in text
    page.click("button[role=tab]:has-text('Extras')")
    info = page.locator("#extras_upscaler_1").inner_text()
    assert str(server.root / "models" / "ESRGAN") in info, info
