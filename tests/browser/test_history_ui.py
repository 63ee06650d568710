"""The History tab: browse, search, select, send to txt2img."""
from __future__ import annotations

import pytest
from PIL import Image

from studio.records import storage
from tests.browser.conftest import screenshot, started_server, studio_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def history_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("history-ui")
    folder = root / "outputs" / "txt2img-images" / "2026-12-02"
    for seed, colour in ((11, "red"), (12, "blue"), (13, "green")):
        text = f"a {colour} circle\nSteps: 5, Sampler: Euler, CFG scale: 6, Seed: {seed}, Size: 64x64"
        storage.save_png(Image.new("RGB", (64, 64), colour), folder, seed, text)
    with started_server(root) as running:
        yield running


def test_browse_search_and_send(browser, history_server):
    with studio_page(browser, history_server.url) as page:
        page.click("button[role=tab]:has-text('History')")
        page.wait_for_function("document.querySelector('#history_page')?.innerText.includes('3 image(s)')",
                               timeout=60_000)
        page.fill("#history_search textarea, #history_search input", "blue")
        page.press("#history_search textarea, #history_search input", "Enter")
        page.wait_for_function("document.querySelector('#history_page')?.innerText.includes('1 image(s)')",
                               timeout=60_000)
        page.locator("#history_gallery .thumbnail-item").first.click()
        page.wait_for_function("document.querySelector('#history_parameters textarea')?.value.includes('Seed: 12')",
                               timeout=60_000)
        screenshot(page, "history")

        page.click("#history_send_txt2img")
        page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value === 'a blue circle'",
                               timeout=60_000)
        assert page.locator("#txt2img_seed input").input_value() == "12"


def test_delete_asks_first_cancel_keeps_and_yes_deletes(browser, history_server):
    folder = history_server.outputs / "txt2img-images" / "2026-12-03"
    text = "a purple circle\nSteps: 5, Sampler: Euler, CFG scale: 6, Seed: 14, Size: 64x64"
    target = storage.save_png(Image.new("RGB", (64, 64), "purple"), folder, 14, text,
                              companions={"mask": Image.new("L", (64, 64), 255)})
    mask = target.with_name(f"{target.stem}-mask.png")
    with studio_page(browser, history_server.url) as page:
        page.click("button[role=tab]:has-text('History')")
        page.wait_for_function("document.querySelector('#history_page')?.innerText.includes('image(s)')",
                               timeout=60_000)  # the tab's own listing first, so it cannot land after the search
        page.fill("#history_search textarea, #history_search input", "purple")
        page.press("#history_search textarea, #history_search input", "Enter")
        page.wait_for_function("document.querySelector('#history_page')?.innerText.includes('1 image(s)')",
                               timeout=60_000)
        page.locator("#history_gallery .thumbnail-item").first.click()
        page.wait_for_function("document.querySelector('#history_parameters textarea')?.value.includes('Seed: 14')",
                               timeout=60_000)

        page.click("#history_delete")
        question = page.locator("#history_delete_question")
        question.wait_for(state="visible", timeout=30_000)
        assert f"Delete {target.name}" in question.inner_text() and "cannot be undone" in question.inner_text()
        screenshot(page, "history_delete_confirm")
        page.click("#history_delete_cancel")
        question.wait_for(state="hidden", timeout=30_000)
        page.wait_for_function("document.querySelector('#history_status')?.innerText.includes('Kept')",
                               timeout=30_000)
        assert target.exists() and mask.exists()

        page.click("#history_delete")
        question.wait_for(state="visible", timeout=30_000)
        page.click("#history_delete_yes")
        page.wait_for_function("document.querySelector('#history_page')?.innerText.includes('0 image(s)')",
                               timeout=60_000)
        assert "Deleted" in page.locator("#history_status").inner_text()
        assert not target.exists() and not mask.exists()
        assert page.locator("#history_gallery .thumbnail-item").count() == 0
        assert not page.locator("#history_delete_question").is_visible()
        screenshot(page, "history_deleted")
    assert len(list(history_server.outputs.rglob("*.png"))) == 3  # the others are untouched


def test_the_selection_survives_send_to_and_coming_back(browser, history_server):
    """Issue 25 §5: select an image, Send to txt2img, come back: Delete (and Reproduce) still act on it."""
    with studio_page(browser, history_server.url) as page:
        page.click("button[role=tab]:has-text('History')")
        page.wait_for_function("document.querySelector('#history_page')?.innerText.includes('image(s)')",
                               timeout=60_000)
        page.locator("#history_gallery .thumbnail-item").nth(1).click()
        page.wait_for_function("document.querySelector('#history_parameters textarea')?.value.includes('Seed:')",
                               timeout=60_000)
        chosen = page.locator("#history_parameters textarea").input_value()
        seed = chosen.split("Seed: ")[1].split(",")[0]
        page.click("#history_send_txt2img")
        page.wait_for_function(f"document.querySelector('#txt2img_seed input')?.value === '{seed}'", timeout=60_000)
        page.click("button[role=tab]:has-text('History')")
        page.wait_for_timeout(2_000)  # the tab's listing is shown again
        assert page.locator("#history_parameters textarea").input_value() == chosen
        page.click("#history_delete")
        question = page.locator("#history_delete_question")
        question.wait_for(timeout=30_000)
        assert f"-{seed}.png" in question.inner_text()  # not "Select an image first."
        page.click("#history_delete_cancel")
