"""The ControlNet panel driven in Chromium: a canny unit with an uploaded image and its preview, a
scribble drawn with the mouse, a pose keypoint dragged in the pose editor — each generated, and
the control image saved beside the output checked against what the user made."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from studio.records.pnginfo import read_generation_info
from tests.browser.conftest import screenshot
from tests.browser.test_txt2img_ui import set_number

pytestmark = pytest.mark.browser

RIGHT_WRIST, RIGHT_ELBOW = 4, 3


@pytest.fixture
def shapes_png(tmp_path: Path) -> Path:
    image = Image.new("RGB", (128, 128), (30, 60, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((24, 24, 104, 104), fill=(230, 40, 40))
    draw.rectangle((50, 4, 78, 18), fill=(250, 250, 60))
    path = tmp_path / "shapes.png"
    image.save(path)
    return path


def open_unit(page, index: int = 0) -> str:
    """Open txt2img's ControlNet accordion on unit `index`, enable it; returns its element id prefix."""
    page.click("#txt2img_controlnet .label-wrap")
    page.click(f"#txt2img_controlnet_units button[role=tab]:has-text('Unit {index}')")
    prefix = f"txt2img_cn{index}"
    page.check(f"#{prefix}_enabled input")
    return prefix


def generate(page, server, seed: int) -> tuple[Path, Image.Image]:
    """Generate 3 steps at 64x64; the saved PNG and the control image saved beside it."""
    before = set(server.outputs.rglob("*.png"))
    set_number(page, "txt2img_steps", "3")
    page.fill("#txt2img_seed input", str(seed))
    page.click("#txt2img_generate")
    page.wait_for_function(
        f"document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: {seed}')", timeout=60_000)
    created = set(server.outputs.rglob("*.png")) - before
    outputs = [p for p in created if p.stem.count("-") == 1]
    assert len(outputs) == 1, created
    control = outputs[0].with_name(f"{outputs[0].stem}-control-0.png")
    assert control in created
    return outputs[0], Image.open(control).convert("RGB")


def fetch_image(page, selector: str) -> Image.Image:
    src = page.get_attribute(selector, "src")
    return Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


def test_canny_unit_preview_equals_the_saved_control_image(page, server, shapes_png):
    prefix = open_unit(page)
    page.locator(f"#{prefix}_image input[type=file]").set_input_files(str(shapes_png))
    page.wait_for_selector(f"#{prefix}_image img")
    page.check(f"#{prefix}_pixel_perfect input")  # edges found at the generation size: binary
    page.click(f"#{prefix}_preview_button")
    page.wait_for_selector(f"#{prefix}_preview img", timeout=30_000)
    preview = fetch_image(page, f"#{prefix}_preview img")
    screenshot(page, "controlnet-canny-preview")

    pixels = np.asarray(preview).astype(int)
    assert preview.size == (64, 64)  # the generation size
    assert set(np.unique(pixels)) == {0, 255}  # white edges on black
    assert (pixels == 0).mean() > 0.8
    assert pixels[32, 32].max() == 0 and pixels[32, 10:16].max() == 255  # the circle's inside / its outline

    output, control = generate(page, server, seed=101)
    screenshot(page, "controlnet-canny-generated")
    params = read_generation_info(output)["params"]
    unit = params["ControlNet 0"]
    assert "Module: canny" in unit and "Control Type: canny" in unit and "Pixel Perfect: True" in unit
    assert np.array_equal(np.asarray(control), np.asarray(preview))


def test_changing_the_control_type_clears_the_preprocessor_preview(page, shapes_png):
    """Issue 25, item 13: a preview made for one type is not left beside another."""
    prefix = open_unit(page)
    page.locator(f"#{prefix}_image input[type=file]").set_input_files(str(shapes_png))
    page.wait_for_selector(f"#{prefix}_image img")
    page.click(f"#{prefix}_preview_button")
    page.wait_for_selector(f"#{prefix}_preview img", timeout=30_000)
    page.click(f"#{prefix}_type label:has-text('tile')")
    page.wait_for_selector(f"#{prefix}_preview img", state="detached", timeout=30_000)
    # The tile type brings its preprocessor and its slider, and previews at its own setting.
    assert page.input_value(f"#{prefix}_module input") == "tile_resample"
    assert page.locator(f"#{prefix}_threshold_a").inner_text().count("Down Sampling Rate") == 1
    page.click(f"#{prefix}_preview_button")
    page.wait_for_selector(f"#{prefix}_preview img", timeout=30_000)
    screenshot(page, "controlnet-tile-preview")
    fitted = ImageOps.fit(Image.open(shapes_png).convert("RGB"), (64, 64), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(fetch_image(page, f"#{prefix}_preview img")), np.asarray(fitted))  # rate 1: as it is
    page.click(f"#{prefix}_type label:has-text('canny')")
    page.wait_for_selector(f"#{prefix}_preview img", state="detached", timeout=30_000)


def test_scribble_drawn_with_the_mouse_becomes_the_control_image(page, server):
    prefix = open_unit(page)
    page.click(f"#{prefix}_type label:has-text('scribble')")
    page.wait_for_selector(f"#{prefix}_sketch canvas")
    page.wait_for_timeout(1000)  # let the canvas lay out
    assert not page.is_checked(f"#{prefix}_preprocess input")  # a white-on-black drawing is the control
    x0, y0, size = canvas_square(page, f"#{prefix}_sketch")
    # A horizontal stroke through the middle, from 30 % to 70 % of the width.
    page.mouse.move(x0 + 0.3 * size, y0 + 0.5 * size)
    page.mouse.down()
    page.mouse.move(x0 + 0.7 * size, y0 + 0.5 * size, steps=15)
    page.mouse.up()
    screenshot(page, "controlnet-scribble-drawn")

    output, control = generate(page, server, seed=202)
    screenshot(page, "controlnet-scribble-generated")
    assert "Control Type: scribble" in read_generation_info(output)["params"]["ControlNet 0"]
    pixels = np.asarray(control.convert("L"))
    assert pixels[28:37, 22:42].max(axis=0).min() > 150, "white along the stroke"
    assert pixels[:16].max() < 30 and pixels[48:].max() < 30, "black away from it"


def canvas_square(page, selector: str) -> tuple[float, float, float]:
    """Screen position and size of the black drawing area inside the sketchpad."""
    shot = np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB")).max(axis=-1) < 8
    box = page.locator(selector).bounding_box()  # after the screenshot, which scrolls it into view
    cols = np.nonzero(shot.mean(axis=0) > 0.3)[0]  # the black square, not the dark label text
    rows = np.nonzero(shot.mean(axis=1) > 0.3)[0]
    scale = box["width"] / shot.shape[1]
    return box["x"] + cols[0] * scale, box["y"] + rows[0] * scale, (cols[-1] + 1 - cols[0]) * scale


def test_dragging_a_pose_keypoint_moves_the_limb_in_the_control_image(page, server):
    prefix = open_unit(page)
    page.click(f"#{prefix}_type label:has-text('pose')")
    wrist = page.locator(f"#{prefix}_pose_canvas circle[data-index='{RIGHT_WRIST}']")
    wrist.wait_for()
    page.click(f"#{prefix}_pose_keypoints .label-wrap")  # shows the keypoint table and JSON
    before = pose_points(page, prefix)
    text = page.input_value(f"#{prefix}_pose_json textarea")
    box = wrist.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    svg = page.locator(f"#{prefix}_pose_canvas svg").bounding_box()
    per_pixel = svg["width"] / 64  # screen pixels per pose pixel at 64x64
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 8 * per_pixel, y - 18 * per_pixel, steps=10)  # raise the hand
    page.mouse.up()
    page.wait_for_function(f"document.querySelector('#{prefix}_pose_json textarea')?.value !== {json.dumps(text)}")
    after = pose_points(page, prefix)
    moved = [i for i in range(18) if after["points"][i] != before["points"][i]]
    assert moved == [RIGHT_WRIST]
    (bx, by), (ax, ay) = before["points"][RIGHT_WRIST], after["points"][RIGHT_WRIST]
    assert ax - bx == pytest.approx(-8, abs=1) and ay - by == pytest.approx(-18, abs=1)
    assert page.locator(f"#{prefix}_pose_table").inner_text().count(f"{ax:g}") >= 1  # the table followed
    screenshot(page, "controlnet-pose-dragged")

    output, control = generate(page, server, seed=303)
    screenshot(page, "controlnet-pose-generated")
    assert "Control Type: pose" in read_generation_info(output)["params"]["ControlNet 0"]
    pixels = np.asarray(control).astype(int)
    (ex, ey) = after["points"][RIGHT_ELBOW]
    forearm_new = [pixels[round(ey + t * (ay - ey)), round(ex + t * (ax - ex))].max() for t in (0.3, 0.5, 0.7)]
    forearm_old = [pixels[round(ey + t * (by - ey)), round(ex + t * (bx - ex))].max() for t in (0.5, 0.7, 0.9)]
    assert min(forearm_new) > 60, "the forearm is drawn towards the new wrist"
    assert max(forearm_old) < 40, "and no longer towards the old one"


def pose_points(page, prefix: str) -> dict:
    flat = json.loads(page.input_value(f"#{prefix}_pose_json textarea"))["people"][0]["pose_keypoints_2d"]
    return {"points": [(flat[3 * i], flat[3 * i + 1]) for i in range(18)]}


def test_png_info_sends_the_controlnet_unit_back_to_txt2img(page, server, shapes_png):
    prefix = open_unit(page)
    page.locator(f"#{prefix}_image input[type=file]").set_input_files(str(shapes_png))
    page.wait_for_selector(f"#{prefix}_image img")
    page.check(f"#{prefix}_pixel_perfect input")
    set_number(page, f"{prefix}_weight", "0.65")
    set_number(page, f"{prefix}_guidance_start", "0.1")
    set_number(page, f"{prefix}_guidance_end", "0.85")
    output, control = generate(page, server, seed=404)
    original = read_generation_info(output)["params"]["ControlNet 0"]
    assert "Weight: 0.65" in original and "Guidance End: 0.85" in original

    page.goto(server.url)  # a fresh form: the unit is off, at its defaults, without an image
    page.wait_for_selector("#txt2img_generate", timeout=60_000)
    page.click("#tab_pnginfo-button, button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(output))
    page.wait_for_function("document.querySelector('#pnginfo_parameters textarea')?.value.includes('Seed: 404')")
    page.click("#pnginfo_send_txt2img")
    page.wait_for_function("document.querySelector('#txt2img_seed input')?.value === '404'")
    page.click("#txt2img_controlnet .label-wrap")
    page.wait_for_selector(f"#{prefix}_image img")
    assert page.is_checked(f"#{prefix}_enabled input")
    assert page.is_checked(f"#{prefix}_pixel_perfect input")
    for name, value in (("weight", "0.65"), ("guidance_start", "0.1"), ("guidance_end", "0.85")):
        assert page.locator(f"#{prefix}_{name} input[type=number]").first.input_value() == value
    screenshot(page, "controlnet-pnginfo-sent")

    again, control_again = generate(page, server, seed=405)
    assert read_generation_info(again)["params"]["ControlNet 0"] == original
    assert np.array_equal(np.asarray(control_again), np.asarray(control))


def drag_right_wrist(page, prefix: str, dx: float, dy: float) -> None:
    """Drag the right wrist by (dx, dy) pose pixels (64x64 canvas) with the mouse."""
    box = page.locator(f"#{prefix}_pose_canvas circle[data-index='{RIGHT_WRIST}']").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    per_pixel = page.locator(f"#{prefix}_pose_canvas svg").bounding_box()["width"] / 64
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx * per_pixel, y + dy * per_pixel, steps=10)
    page.mouse.up()


def test_pose_drag_after_opening_and_escaping_the_preset_dropdown_is_kept(page, server):
    """Issue 18 item 6: open the "Pose preset" dropdown, Esc, drag the wrist: JSON and image follow."""
    prefix = open_unit(page)
    page.click(f"#{prefix}_type label:has-text('pose')")
    page.locator(f"#{prefix}_pose_canvas circle[data-index='{RIGHT_WRIST}']").wait_for()
    page.click(f"#{prefix}_pose_keypoints .label-wrap")
    before = pose_points(page, prefix)
    page.locator(f"#{prefix}_pose_preset input").first.click()
    page.get_by_role("option").first.wait_for()
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)
    drag_right_wrist(page, prefix, -8, -18)
    page.wait_for_timeout(1500)  # let any late server update land
    after = pose_points(page, prefix)
    screenshot(page, "controlnet-pose-dragged-after-preset-escape")
    (bx, by), (ax, ay) = before["points"][RIGHT_WRIST], after["points"][RIGHT_WRIST]
    assert ax - bx == pytest.approx(-8, abs=1) and ay - by == pytest.approx(-18, abs=1)
    output, control = generate(page, server, seed=306)  # clicks elsewhere: the dropdown loses focus
    assert pose_points(page, prefix) == after
    pixels = np.asarray(control).astype(int)
    (ex, ey) = after["points"][RIGHT_ELBOW]
    assert min(pixels[round(ey + t * (ay - ey)), round(ex + t * (ax - ex))].max() for t in (0.3, 0.5, 0.7)) > 60

    # Choosing a preset still applies it.
    dragged = page.input_value(f"#{prefix}_pose_json textarea")
    page.locator(f"#{prefix}_pose_preset input").first.click()
    page.get_by_role("option", name="arms up", exact=True).click()
    page.wait_for_function(f"document.querySelector('#{prefix}_pose_json textarea')?.value !== {json.dumps(dragged)}")
    assert pose_points(page, prefix) not in (before, after)
