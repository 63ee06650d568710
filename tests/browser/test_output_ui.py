"""The output galleries as a user sees them (issue 18): the whole image, at a sensible size."""
from __future__ import annotations

import pytest
from PIL import Image

from tests.browser.conftest import screenshot
from tests.browser.test_txt2img_ui import generate, newest_png

pytestmark = pytest.mark.browser

SHOWN_IMAGE = """(gallery) => {  // the largest image shown in the gallery
  const area = (i) => i.getBoundingClientRect().width * i.getBoundingClientRect().height;
  const img = [...document.querySelectorAll(`#${gallery} img`)].sort((a, b) => area(b) - area(a))[0];
  if (!img || !img.complete || !img.naturalWidth) return null;
  const box = img.getBoundingClientRect();
  const frame = document.getElementById(gallery).getBoundingClientRect();
  return {natural: [img.naturalWidth, img.naturalHeight], box: [box.left, box.top, box.right, box.bottom],
          frame: [frame.left, frame.top, frame.right, frame.bottom], fit: getComputedStyle(img).objectFit,
          rendering: getComputedStyle(img).imageRendering};
}"""


def shown_image(page, gallery: str) -> dict:
    page.wait_for_function(SHOWN_IMAGE, arg=gallery, timeout=30_000)
    page.wait_for_timeout(300)  # let the layout settle
    return page.evaluate(SHOWN_IMAGE, gallery)


def test_output_shows_the_whole_image_pixelated_at_a_whole_factor(page, server):
    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a red circle on a blue background", 1818, steps="3", width="64", height="128")
    saved = newest_png(server.outputs, before)
    shown = shown_image(page, "txt2img_gallery")
    screenshot(page, "output-whole-image")

    assert tuple(shown["natural"]) == Image.open(saved).size == (64, 128)
    left, top, right, bottom = shown["box"]
    width, height = right - left, bottom - top
    assert abs(width / height - 64 / 128) < 0.02, shown  # same aspect ratio as the file
    frame_left, frame_top, frame_right, frame_bottom = shown["frame"]
    assert frame_left <= left and frame_top <= top and right <= frame_right and bottom <= frame_bottom, shown
    zoom = height / 128
    assert 1 <= zoom <= 4 and zoom == int(zoom), shown  # no 9x blur-up: a whole factor, crisp pixels
    assert shown["rendering"] == "pixelated"
