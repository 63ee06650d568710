"""Issue 25 §4: an error keeps the last results on screen and says what went wrong beside them
until the next run (no bare "Error" badge in place of the gallery)."""
from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_txt2img_ui import generate, set_number

pytestmark = pytest.mark.browser


def gallery_images(page) -> list[str]:
    return page.eval_on_selector_all("#txt2img_gallery img", "els => els.map(e => e.src)")


def test_an_error_keeps_the_last_results_and_shows_its_text_until_the_next_run(page, server):
    generate(page, "txt2img", "a red circle on a blue background", seed=404, steps="4")
    page.wait_for_selector("#txt2img_gallery img", timeout=60_000)
    shown = gallery_images(page)
    infotext = page.locator("#txt2img_infotext textarea").input_value()

    set_number(page, "txt2img_width", "70")  # not a multiple of 8: refused
    page.click("#txt2img_generate")
    error = page.locator("#txt2img_status .studio-error")
    error.wait_for(timeout=60_000)
    assert "width must be a multiple of 8" in error.inner_text()
    page.wait_for_timeout(8_000)  # long after a toast would have faded
    assert error.is_visible() and "width must be a multiple of 8" in error.inner_text()
    assert gallery_images(page) == shown  # the last results stay
    assert page.locator("#txt2img_infotext textarea").input_value() == infotext
    assert page.locator("#txt2img_gallery .error").count() == 0  # no red "Error" badge over them
    screenshot(page, "error_beside_results")

    set_number(page, "txt2img_width", "64")
    generate(page, "txt2img", "a red circle on a blue background", seed=405, steps="4")
    assert page.locator("#txt2img_status .studio-error").count() == 0  # the next run clears it
