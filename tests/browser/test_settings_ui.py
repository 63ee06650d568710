"""The Settings tab: A1111's editable page over the options store (config.json), as a user drives it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import started_server, studio_page

pytestmark = pytest.mark.browser
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def open_settings(page) -> None:
    page.click("button[role=tab]:has-text('Settings')")
    page.wait_for_selector("#settings_submit", timeout=60_000)
    # The page load fills the fields with the store's values: edit only after it did (on a busy machine it
    # can come after the first fill and would overwrite it).
    page.wait_for_selector("#settings_loaded .settings-loaded", state="attached", timeout=60_000)


def apply(page) -> str:
    before = page.inner_text("#settings_result")
    page.click("#settings_submit")
    # The answer, not Gradio's progress text ("0.5s") shown while a busy machine works on it.
    page.wait_for_function("""(before) => {
        const said = document.querySelector('#settings_result')?.innerText;
        return said !== before && /settings changed|Not applied|No setting changed/.test(said || '');
    }""", arg=before, timeout=60_000)
    return page.inner_text("#settings_result")


def test_settings_are_edited_applied_saved_and_used_by_the_next_image(browser, tmp_path):
    with started_server(tmp_path) as server, studio_page(browser, server.url) as page:
        open_settings(page)
        page.fill("#setting_CLIP_stop_at_last_layers input[type=number]", "2")
        page.fill("#setting_samples_filename_pattern textarea", "[seed]-[prompt_words]-[steps]")
        page.fill("#setting_default_steps input[type=number]", "3")
        page.locator("#setting_samples_filename_pattern textarea").press("Tab")
        said = apply(page)
        assert "settings changed" in said and "CLIP_stop_at_last_layers" in said, said
        saved = json.loads((tmp_path / "config.json").read_text())
        assert saved["CLIP_stop_at_last_layers"] == 2 and saved["default_steps"] == 3
        assert saved["samples_filename_pattern"] == "[seed]-[prompt_words]-[steps]"
        DOCS_IMG.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / "settings.png"), full_page=True)

        # a bad value is refused with a message naming it, and nothing is saved
        page.fill("#setting_samples_filename_pattern textarea", "[seed]-[nope]")
        page.locator("#setting_samples_filename_pattern textarea").press("Tab")
        said = apply(page)
        assert "Not applied" in said and "[nope]" in said, said
        assert json.loads((tmp_path / "config.json").read_text())["samples_filename_pattern"] == "[seed]-[prompt_words]-[steps]"

    # after a restart and on a fresh page: the saved values, the forms start from the defaults, the next image uses them
    with started_server(tmp_path) as server, studio_page(browser, server.url) as page:
        page.wait_for_function("document.querySelector('#txt2img_steps input[type=number]')?.value === '3'",
                               timeout=60_000)
        open_settings(page)
        assert page.input_value("#setting_samples_filename_pattern textarea") == "[seed]-[prompt_words]-[steps]"
        page.click("button[role=tab]:has-text('txt2img')")
        page.fill("#txt2img_prompt textarea", "blue sky, red circle")
        page.fill("#txt2img_seed input", "5")
        page.click("#txt2img_generate")
        page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 5')",
                               timeout=120_000)
        assert "Clip skip: 2" in page.input_value("#txt2img_infotext textarea")
        names = [p.name for p in (tmp_path / "outputs").rglob("*.png")]
        assert any(re.fullmatch(r"\d{5}-5-blue sky red circle-3\.png", name) for name in names), names


def test_return_grid_puts_the_batch_grid_first_in_the_gallery(browser, server):
    """Issue 25 item 8: A1111's "Show grid in gallery" and "Always save all generated image grids",
    ticked on the Settings page, give a batch's grid first in the Output gallery, saved to txt2img-grids/.
    On the session's server (a start of its own costs a Python, torch and model load): both options are
    set back afterwards, whatever happened."""
    grids = server.outputs / "txt2img-grids"
    before = len(list(grids.rglob("*.png")))
    try:
        with studio_page(browser, server.url) as page:
            open_settings(page)
            page.check("#setting_return_grid input[type=checkbox]")
            page.check("#setting_grid_save input[type=checkbox]")
            assert "return_grid" in apply(page)
            page.click("button[role=tab]:has-text('txt2img')")
            page.fill("#txt2img_prompt textarea", "a red circle on a blue background")
            for name, value in (("steps", "2"), ("batch_size", "2")):
                field = page.locator(f"#txt2img_{name} input[type=number]").first
                field.fill(value)
                field.press("Tab")
            page.click("#txt2img_generate")
            page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed:')",
                                   timeout=180_000)
            # the grid (2 images: one row, 128x64) first, then the two 64x64 images
            page.wait_for_function("""() => {
                const imgs = [...document.querySelectorAll('#txt2img_gallery .thumbnail-small img')];
                return imgs.length === 3 && imgs.every(i => i.complete) && imgs[0].naturalWidth === 128
                    && imgs[0].naturalHeight === 64 && imgs[1].naturalWidth === 64 && imgs[2].naturalWidth === 64;
            }""", timeout=60_000)
            assert "Grid" in page.inner_text("#txt2img_gallery")  # its caption
            assert len(list(grids.rglob("*.png"))) == before + 1
    finally:
        reset = httpx.post(server.url + "sdapi/v1/options", json={"return_grid": False, "grid_save": False},
                           timeout=120)
        assert reset.status_code == 200, reset.text
