"""Styles and clip skip in the txt2img tab, as a user picks them."""
from __future__ import annotations

import pytest

from studio.records.pnginfo import read_generation_info
from tests.browser.conftest import screenshot
from tests.browser.test_txt2img_ui import generate, newest_png, set_number

pytestmark = pytest.mark.browser


def pick_style(page, tab: str, name: str) -> None:
    page.click(f"#{tab}_styles input")
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def test_a_picked_style_is_applied_and_recorded(page, server):
    pick_style(page, "txt2img", "Photograph")
    set_number(page, "txt2img_clip_skip", "2")
    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a red circle", 4242, steps="2", width="64", height="64")
    text = page.input_value("#txt2img_infotext textarea")
    screenshot(page, "txt2img-style-picked")
    assert text.startswith("a red circle, photograph, natural light, sharp focus\n")
    assert "Negative prompt: drawing, painting, blurry" in text
    assert 'Styles: "[\\"Photograph\\"]"' in text and "Clip skip: 2" in text
    png = newest_png(server.outputs, before)
    assert read_generation_info(png)["infotext"] == text

    # PNG Info -> txt2img: the bare prompt comes back with the style selected (styled once on Generate).
    page.fill("#txt2img_prompt textarea", "something else")
    page.click("#tab_pnginfo-button, button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(png))
    page.wait_for_function("document.querySelector('#pnginfo_parameters textarea')?.value.includes('Seed: 4242')")
    page.click("#pnginfo_send_txt2img")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value === 'a red circle'")
    assert page.input_value("#txt2img_neg_prompt textarea") == ""
    assert page.locator("#txt2img_styles").inner_text().count("Photograph") == 1
    assert page.locator("#txt2img_clip_skip input[type=number]").first.input_value() == "2"


def test_apply_expands_styles_into_the_prompt_and_save_adds_one(page, server):
    page.fill("#txt2img_prompt textarea", "a cat")
    pick_style(page, "txt2img", "Watercolor")
    page.click("#txt2img_style_apply")
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value.startsWith('watercolor')")
    assert page.input_value("#txt2img_prompt textarea") == "watercolor painting of a cat, soft edges, paper texture"
    assert page.input_value("#txt2img_neg_prompt textarea") == "photo, harsh lines"
    page.fill("#txt2img_prompt textarea", "{prompt}, in blue ink")
    page.click("#txt2img_style_save_panel button:has-text('Save the prompts as a style')")
    page.fill("#txt2img_style_name textarea", "Blue ink")
    page.click("#txt2img_style_save")
    page.wait_for_function("document.querySelector('#txt2img_style_name textarea')?.value === ''")
    assert "Blue ink" in (server.root / "styles.csv").read_text()
    pick_style(page, "txt2img", "Blue ink")
    screenshot(page, "txt2img-style-saved")
