"""Sizes follow the loaded model's family (issue 15): width/height change to the new model's default
size when it is switched, unless the user chose a size; aspect-ratio buttons; the SDXL Refiner
accordion. A tiny random SDXL base (default size 128) and refiner sit beside the default model (64)."""
from __future__ import annotations

from typing import Iterator

import pytest

from studio.checkpoints.sizes import size_for
from tests.browser.conftest import Server, screenshot, started_server, studio_page
from tests.browser.test_sources_ui import open_tab
from tests.browser.test_txt2img_ui import pick, set_number
from tests.support.tiny_sdxl import write_tiny_sdxl_base, write_tiny_sdxl_refiner

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def xl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sizes")
    models = root / "models" / "Stable-diffusion"
    write_tiny_sdxl_base(models / "xl-base", sample_size=64)
    write_tiny_sdxl_refiner(models / "xl-refiner")
    with started_server(root) as running:
        yield running


@pytest.fixture
def xl_page(browser, xl_server):
    with studio_page(browser, xl_server.url) as opened:
        yield opened


def size(page, tab: str) -> tuple[int, int]:
    return tuple(int(page.locator(f"#{tab}_{side} input[type=number]").first.input_value())
                 for side in ("width", "height"))


def wait_size(page, tab: str, expected: tuple[int, int]) -> None:
    script = (f"(() => {{ const v = s => document.querySelector('#{tab}_' + s + ' input[type=number]').value; "
              f"return v('width') == '{expected[0]}' && v('height') == '{expected[1]}'; }})()")
    try:
        page.wait_for_function(script, timeout=60_000)
    except Exception:
        raise AssertionError(f"{tab} size is {size(page, tab)}, expected {expected}") from None


def switch_model(page, title: str) -> None:
    pick(page, "#model_checkpoint", title)


def test_sizes_follow_the_model_unless_the_user_chose_one(xl_page):
    page = xl_page
    assert size(page, "txt2img") == (64, 64)
    switch_model(page, "xl-base")
    wait_size(page, "txt2img", (128, 128))
    open_tab(page, "img2img")
    wait_size(page, "img2img", (128, 128))
    set_number(page, "img2img_width", "200")  # the user's own size
    open_tab(page, "txt2img")
    page.click("#txt2img_aspect_16x9")
    wait_size(page, "txt2img", size_for(128, "16:9"))
    switch_model(page, "studio-default-64px")
    wait_size(page, "txt2img", size_for(64, "16:9"))  # follows, keeping the chosen ratio
    screenshot(page, "sizes-follow-model")
    open_tab(page, "img2img")
    page.wait_for_timeout(1000)
    assert size(page, "img2img") == (200, 128)  # the user's size is kept


def test_the_refiner_accordion_refines_and_a_wrong_family_is_a_message(xl_page):
    page = xl_page
    switch_model(page, "xl-base")
    wait_size(page, "txt2img", (128, 128))
    set_number(page, "txt2img_width", "64")
    set_number(page, "txt2img_height", "64")
    assert not page.locator("#txt2img_refiner_note").is_visible()  # there are SDXL models: the panel shows
    page.click("#txt2img_refiner")
    # Issue 25 §3: only SDXL models are offered (the default model would be refused).
    page.locator("#txt2img_refiner_checkpoint input").first.click()
    offered = page.get_by_role("option").all_inner_texts()
    assert "xl-refiner" in offered and "xl-base" in offered and "studio-default-64px" not in offered, offered
    page.keyboard.press("Escape")
    page.fill("#txt2img_prompt textarea", "a red circle")
    set_number(page, "txt2img_steps", "4")
    pick(page, "#txt2img_refiner_checkpoint", "xl-refiner")
    set_number(page, "txt2img_refiner_switch_at", "0.5")
    page.fill("#txt2img_seed input", "4242")
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 4242')",
                           timeout=120_000)
    text = page.locator("#txt2img_infotext textarea").input_value()
    assert "Refiner: xl-refiner [" in text and "Refiner switch at: 0.5" in text
    screenshot(page, "refiner-accordion")
