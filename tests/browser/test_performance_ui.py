"""Live previews during a long run, and the step-cache option, driven as a user drives them."""
from __future__ import annotations

import pytest

from studio.records.pnginfo import read_generation_info
from tests.browser.conftest import screenshot
from tests.browser.test_txt2img_ui import generate, newest_png, set_number

pytestmark = pytest.mark.browser


def test_a_live_preview_image_shows_while_sampling_then_the_result_replaces_it(page, server):
    # The server's defaults: a preview every 5 steps by "Approx cheap". 100 steps run for a while.
    page.fill("#txt2img_prompt textarea", "a red circle on a blue background")
    set_number(page, "txt2img_steps", "100")
    page.fill("#txt2img_seed input", "31")
    page.click("#txt2img_generate")
    preview = page.locator("#txt2img_live_preview img")
    preview.wait_for(state="visible", timeout=120_000)
    assert preview.get_attribute("src")
    screenshot(page, "live_preview_running")
    page.wait_for_function(
        "document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 31')", timeout=300_000)
    page.locator("#txt2img_live_preview").wait_for(state="hidden", timeout=10_000)
    set_number(page, "txt2img_steps", "20")


def test_choosing_cache_every_3_is_recorded_in_the_png(page, server):
    before = set(server.outputs.rglob("*.png"))
    page.get_by_label("every 3").first.check()
    generate(page, "txt2img", "a red circle on a blue background", seed=32, steps="6")
    infotext = page.locator("#txt2img_infotext textarea").input_value()
    assert "Cache interval: 3" in infotext
    saved = newest_png(server.outputs, before)
    assert "Cache interval: 3" in read_generation_info(saved)["infotext"]
