"""Hires fix (txt2img) and the Extras tab, driven as a user drives them."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from studio.records.pnginfo import read_generation_info
from tests.browser.conftest import screenshot, started_server, studio_page
from tests.support.esrgan import write_esrgan

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def upscale_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("upscale-ui")
    write_esrgan(root / "models" / "ESRGAN", "tiny-esrgan-4x")
    with started_server(root) as running:
        yield running


@pytest.fixture
def page(browser, upscale_server):
    with studio_page(browser, upscale_server.url) as opened:
        yield opened


def set_number(page, elem_id: str, value: str) -> None:
    field = page.locator(f"#{elem_id} input[type=number]").first
    field.fill(value)
    field.press("Tab")


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").first.click()
    page.locator(dropdown).get_by_role("option", name=option, exact=True).click()


def wait_for_new_pngs(folder: Path, before: set[Path], count: int, timeout: float = 120) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        created = sorted(p for p in folder.rglob("*.png") if p not in before)
        if len(created) >= count:
            return created
        time.sleep(0.5)
    raise AssertionError(f"expected {count} new PNGs in {folder}")


def test_hires_fix_doubles_the_size_and_writes_its_infotext(page, upscale_server):
    before = set(upscale_server.outputs.rglob("*.png"))
    page.click("#txt2img_hires_fix")  # open the accordion
    page.locator("#txt2img_enable_hr input").check()
    pick(page, "#txt2img_hr_upscaler", "tiny-esrgan-4x")
    set_number(page, "txt2img_hr_scale", "2")
    set_number(page, "txt2img_hires_steps", "2")
    set_number(page, "txt2img_denoising_strength", "0.5")
    page.fill("#txt2img_prompt textarea", "a red circle on a blue background")
    set_number(page, "txt2img_steps", "2")
    page.fill("#txt2img_seed input", "77")
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 77')",
                           timeout=120_000)
    screenshot(page, "txt2img_hires_fix")
    saved = wait_for_new_pngs(upscale_server.outputs, before, 1)[0]
    assert Image.open(saved).size == (128, 128)
    params = read_generation_info(saved)["params"]
    assert (params["Hires upscaler"], params["Hires upscale"], params["Hires steps"]) == ("tiny-esrgan-4x", "2", "2")
    assert params["Denoising strength"] == "0.5"
    # "Restore faces" reaches the engine: with no restorer files here, the page says which file to place where
    page.locator("#txt2img_restore_faces input").check()
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#txt2img_status')?.innerText.includes('codeformer-v0.1.0.pth')",
                           timeout=120_000)
    assert "models/Codeformer" in page.locator("#txt2img_status").inner_text()
    page.locator("#txt2img_restore_faces input").uncheck()


def picture(path: Path, colour: tuple[int, int, int]) -> Path:
    image = Image.new("RGB", (32, 32), colour)
    ImageDraw.Draw(image).rectangle((8, 8, 20, 20), fill=(250, 250, 250))
    image.save(path)
    return path


def test_extras_upscales_a_single_image_and_a_batch(page, upscale_server, tmp_path):
    extras = upscale_server.outputs / "extras-images"
    before = set(upscale_server.outputs.rglob("*.png"))
    page.click("button[role=tab]:has-text('Extras')")
    page.locator("#extras_image input[type=file]").set_input_files(str(picture(tmp_path / "one.png", (200, 30, 30))))
    pick(page, "#extras_upscaler_1", "tiny-esrgan-4x")
    set_number(page, "extras_upscaling_resize", "4")
    page.click("#extras_face_restoration")  # the accordion says which face restoration files to place, and where
    reason = page.locator("#extras_face_restoration_reason").inner_text(timeout=10_000)
    assert "GFPGANv1.4.pth" in reason and "codeformer-v0.1.0.pth" in reason
    page.click("#extras_generate")
    page.wait_for_function("document.querySelector('#extras_info textarea')?.value.includes('tiny-esrgan-4x')",
                           timeout=120_000)
    single = wait_for_new_pngs(extras, before, 1)
    assert Image.open(single[0]).size == (128, 128)
    screenshot(page, "extras_single")

    page.click("#extras_batch_tab-button, button[role=tab]:has-text('Batch')")
    files = [picture(tmp_path / f"b{i}.png", colour) for i, colour in enumerate([(10, 200, 10), (10, 10, 200)])]
    page.locator("#extras_batch_files input[type=file]").set_input_files([str(f) for f in files])
    pick(page, "#extras_upscaler_1", "Lanczos")
    pick(page, "#extras_upscaler_2", "Nearest")
    set_number(page, "extras_upscaler_2_visibility", "0.5")
    set_number(page, "extras_upscaling_resize", "2")
    page.click("#extras_generate")
    batch = wait_for_new_pngs(extras, before | set(single), 2)
    assert [Image.open(p).size for p in batch] == [(64, 64), (64, 64)]
    page.wait_for_function("document.querySelector('#extras_info textarea')?.value.includes('upscaler 2: Nearest')",
                           timeout=60_000)
    screenshot(page, "extras_batch")
