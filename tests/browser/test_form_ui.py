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
    log = (server.root / "server.log").read_text()
    assert "Traceback" not in log and "less than minimum" not in log, log[-3000:]
