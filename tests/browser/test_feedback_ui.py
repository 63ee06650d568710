"""Issue 25: A1111's feedback in the Output box (Time taken, queue place), Send-to behaviour and
the hints that say where files go, driven as a user does."""
from __future__ import annotations

import pytest

from tests.browser.test_txt2img_ui import generate

pytestmark = pytest.mark.browser


def test_each_job_ends_with_a1111s_time_taken_line(page, server):
    generate(page, "txt2img", "a red circle on a blue background", seed=808, steps="4")
    page.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('Time taken:')",
                           timeout=30_000)
    line = [text for text in page.inner_text("#txt2img_status").splitlines() if "Time taken" in text][0]
    assert line.startswith("Time taken: ") and line.endswith(" sec."), line
