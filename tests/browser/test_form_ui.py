"""The generation form's messages (issue 18): out-of-range numbers and far-from-native sizes."""
from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_sources_ui import close_toasts, toast
from tests.browser.test_txt2img_ui import set_number

pytestmark = pytest.mark.browser


def number(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").first.input_value()


def test_out_of_range_numbers_are_a_message_and_no_traceback(page, server):
    log_start = len((server.root / "server.log").read_text())
    set_number(page, "txt2img_width", "13")
    toast(page, "Width 13 is outside 64–2048: using 64")
    set_number(page, "txt2img_steps", "0")
    toast(page, "Sampling steps 0 is outside 1–150: using 1")
    set_number(page, "txt2img_batch_count", "1000")
    toast(page, "Batch count 1000 is outside 1–100: using 100")
    screenshot(page, "out-of-range")
    assert (number(page, "txt2img_width"), number(page, "txt2img_steps"), number(page, "txt2img_batch_count")) == (
        "64", "1", "100")
    close_toasts(page)
    for elem_id, value in (("txt2img_width", "64"), ("txt2img_steps", "20"), ("txt2img_batch_count", "1")):
        set_number(page, elem_id, value)
    page.wait_for_timeout(1000)
    log = (server.root / "server.log").read_text()[log_start:]
    assert "Traceback" not in log and "less than minimum" not in log, log[-3000:]


def test_a_size_far_from_the_models_native_size_gets_a_hint(page):
    hint = "#txt2img_size_hint"
    set_number(page, "txt2img_width", "512")
    set_number(page, "txt2img_height", "512")
    page.wait_for_function(f"document.querySelector('{hint}')?.innerText.includes('trained at 64×64')", timeout=30_000)
    screenshot(page, "size-hint")
    assert "512×512" in page.inner_text(hint)
    set_number(page, "txt2img_width", "64")
    set_number(page, "txt2img_height", "64")
    page.wait_for_function(f"!document.querySelector('{hint}')?.innerText.includes('trained at')", timeout=30_000)


def test_size_hint_rule():
    from studio.ui.generation import size_hint

    assert size_hint(64, 64, 64) == size_hint(96, 64, 64) == size_hint(768, 512, 512) == ""
    assert "trained at 64×64" in size_hint(512, 512, 64)
    assert "1024×1024" in size_hint(1024, 1024, 512)
    assert size_hint(256, 512, 512) != ""
