"""Live previews during a long run, and the step-cache option, driven as a user drives them."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

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


COLLECT_PREVIEWS = """() => { window.__previews = []; window.__collector = setInterval(() => {
    const img = document.querySelector('#txt2img_live_preview img');
    if (img && img.src && img.complete && img.naturalWidth && !window.__previews.some(p => p.src === img.src)) {
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        canvas.getContext('2d').drawImage(img, 0, 0);
        window.__previews.push({src: img.src, w: img.naturalWidth, h: img.naturalHeight,
                                data: canvas.toDataURL('image/png')});
    } }, 50); }"""


def _pixels(data_url: str):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"), dtype=float)


def test_the_live_preview_shows_the_picture_at_full_size_not_the_noise(page, server):
    """Issue 25 §9: the preview is the model's guess of the clean image (x̂0) at the output's size."""
    before = set(server.outputs.rglob("*.png"))
    page.fill("#txt2img_prompt textarea", "a red circle on a blue background")
    set_number(page, "txt2img_steps", "60")
    page.fill("#txt2img_seed input", "33")
    page.evaluate(COLLECT_PREVIEWS)
    page.click("#txt2img_generate")
    page.wait_for_function(
        "document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 33')", timeout=300_000)
    previews = page.evaluate("clearInterval(window.__collector) || window.__previews")
    set_number(page, "txt2img_steps", "20")
    assert previews, "no live preview was shown"
    assert all((p["w"], p["h"]) == (64, 64) for p in previews)  # the image's own size, not the latent's
    final = np.asarray(Image.open(newest_png(server.outputs, before)).convert("RGB"), dtype=float)
    noise = np.random.default_rng(0).integers(0, 256, final.shape).astype(float)
    middle = _pixels(previews[len(previews) // 2]["data"])
    assert np.abs(middle - final).mean() < np.abs(middle - noise).mean()
    # The prompt's colours: more red than blue in the middle, more blue than red at the corners.
    centre, corner = middle[24:40, 24:40].mean(axis=(0, 1)), middle[:8, :8].mean(axis=(0, 1))
    assert centre[0] - centre[2] > corner[0] - corner[2]
