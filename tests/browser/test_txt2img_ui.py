"""The txt2img and PNG Info tabs, driven the way a user drives them."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.records.pnginfo import read_generation_info
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser


def set_number(page, elem_id: str, value: str) -> None:
    field = page.locator(f"#{elem_id} input[type=number]").first
    field.fill(value)
    field.press("Tab")


def generate(page, tab: str, prompt: str, seed: int, negative: str | None = None, **numbers: str) -> None:
    """Fill the tab's prompt, number fields (by elem_id suffix) and seed, click Generate, wait
    until the infotext shows this seed."""
    page.fill(f"#{tab}_prompt textarea", prompt)
    if negative is not None:
        page.fill(f"#{tab}_neg_prompt textarea", negative)
    for name, value in numbers.items():
        set_number(page, f"{tab}_{name}", value)
    page.fill(f"#{tab}_seed input", str(seed))
    page.click(f"#{tab}_generate")
    page.wait_for_function(
        f"document.querySelector('#{tab}_infotext textarea')?.value.includes('Seed: {seed}')", timeout=60_000)


def newest_png(outputs: Path, before: set[Path]) -> Path:
    created = [p for p in outputs.rglob("*.png") if p not in before]
    assert len(created) == 1, created
    return created[0]


def test_generate_saves_png_with_infotext_then_png_info_sends_it_back(page, server):
    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a yellow circle on a purple background", 4242, negative="green", steps="6",
             cfg_scale="5.5")
    page.wait_for_selector("#txt2img_gallery img", timeout=60_000)
    screenshot(page, "txt2img")

    saved = newest_png(server.outputs, before)
    params = read_generation_info(saved)["params"]
    assert params["Prompt"] == "a yellow circle on a purple background"
    assert params["Negative prompt"] == "green"
    assert (params["Seed"], params["Steps"], params["CFG scale"]) == ("4242", "6", "5.5")
    assert (params["Size-1"], params["Size-2"]) == ("64", "64")

    # Change the form, then restore it from the PNG.
    page.fill("#txt2img_prompt textarea", "something else")
    page.fill("#txt2img_seed input", "-1")
    page.click("#tab_pnginfo-button, button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved))
    page.wait_for_function("document.querySelector('#pnginfo_parameters textarea')?.value.includes('Seed: 4242')")
    screenshot(page, "pnginfo")
    page.click("#pnginfo_send_txt2img")
    page.wait_for_function(
        "document.querySelector('#txt2img_prompt textarea')?.value === 'a yellow circle on a purple background'")
    assert page.input_value("#txt2img_neg_prompt textarea") == "green"
    assert page.input_value("#txt2img_seed input") == "4242"
    assert page.locator("#txt2img_steps input[type=number]").first.input_value() == "6"
    assert page.locator("#txt2img_cfg_scale input[type=number]").first.input_value() == "5.5"


def test_ctrl_enter_generates(page, server):
    before = set(server.outputs.rglob("*.png"))
    page.fill("#txt2img_prompt textarea", "a blue square")
    set_number(page, "txt2img_steps", "3")
    page.fill("#txt2img_seed input", "99")
    page.focus("#txt2img_prompt textarea")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 99')",
                           timeout=60_000)
    assert read_generation_info(newest_png(server.outputs, before))["params"]["Prompt"] == "a blue square"


def test_invalid_size_shows_a_message_and_the_server_keeps_serving(page, server):
    set_number(page, "txt2img_width", "70")
    set_number(page, "txt2img_steps", "2")
    page.click("#txt2img_generate")
    toast = page.get_by_text("width must be a multiple of 8")
    toast.first.wait_for(timeout=30_000)
    screenshot(page, "txt2img-error")
    set_number(page, "txt2img_width", "64")
    page.fill("#txt2img_seed input", "7")
    page.click("#txt2img_generate")
    page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 7')",
                           timeout=60_000)


def test_settings_tab_renders(page):
    page.click("button[role=tab]:has-text('Settings')")
    page.wait_for_selector("#settings_json")
    screenshot(page, "settings")
    assert "outputs_dir" in page.inner_text("#settings_json")


def test_ui_image_equals_api_image_and_png_info_reproduce_is_bit_identical(page, server):
    import base64
    import io
    import json
    import urllib.request

    import numpy as np
    from PIL import Image

    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a green triangle on a white background", 8080, negative="", steps="5",
             cfg_scale="7", width="64")
    saved = newest_png(server.outputs, before)
    ui_pixels = np.asarray(Image.open(saved).convert("RGB"))

    body = json.dumps({"prompt": "a green triangle on a white background", "steps": 5, "cfg_scale": 7, "seed": 8080,
                       "sampler_name": "Euler a", "width": 64, "height": 64}).encode()
    request = urllib.request.Request(server.url + "sdapi/v1/txt2img", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        api_image = json.loads(response.read())["images"][0]
    api_pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(api_image))).convert("RGB"))
    assert np.array_equal(ui_pixels, api_pixels)

    page.click("button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved))
    page.wait_for_function("document.querySelector('#pnginfo_parameters textarea')?.value.includes('Seed: 8080')")
    before = set(server.outputs.rglob("*.png"))
    page.click("#pnginfo_reproduce")
    page.wait_for_selector("#pnginfo_reproduced img", timeout=60_000)
    screenshot(page, "pnginfo-reproduce")
    again = newest_png(server.outputs, before)
    assert np.array_equal(np.asarray(Image.open(again).convert("RGB")), ui_pixels)
    assert "⚠️" not in page.inner_text("#pnginfo_warnings")


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_schedule_type_is_chosen_beside_the_sampler_recorded_and_sent_back(page, server):
    before = set(server.outputs.rglob("*.png"))
    pick(page, "#txt2img_sampling", "DPM++ 2M")
    pick(page, "#txt2img_scheduler", "Karras")
    generate(page, "txt2img", "a red circle on a blue background", 5150, steps="4")
    params = read_generation_info(newest_png(server.outputs, before))["params"]
    assert (params["Sampler"], params["Schedule type"]) == ("DPM++ 2M", "Karras")
    screenshot(page, "txt2img-schedule-type")

    pick(page, "#txt2img_scheduler", "Automatic")
    page.click("#tab_pnginfo-button, button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(newest_png(server.outputs, before)))
    page.wait_for_function("document.querySelector('#pnginfo_parameters textarea')?.value.includes('Seed: 5150')")
    page.click("#pnginfo_send_txt2img")
    page.wait_for_function("document.querySelector('#txt2img_scheduler input')?.value === 'Karras'")
    assert page.input_value("#txt2img_sampling input") == "DPM++ 2M"


def test_progress_shows_eta_skip_drops_one_image_and_interrupt_keeps_the_finished_ones(page, server):
    """Issue 18 item 7: "Step i/n · … ETA" while it runs; Skip drops the second of three images and
    Interrupt during the third keeps (shows and saves) the first; the progress stays off the
    Generation-parameters box."""
    before = set(server.outputs.rglob("*.png"))
    page.fill("#txt2img_prompt textarea", "a red circle on a blue background")
    for name, value in (("steps", "150"), ("batch_count", "3")):
        set_number(page, f"txt2img_{name}", value)
    page.fill("#txt2img_seed input", "77")
    page.click("#txt2img_generate")
    progress = page.locator("#txt2img_gallery").get_by_text("batch 2/3")
    progress.first.wait_for(timeout=120_000)
    text = page.locator("#txt2img_gallery").get_by_text("ETA").first.inner_text()
    assert "Step" in text and "ETA" in text, text
    assert page.locator("#txt2img_infotext").get_by_text("ETA").count() == 0  # no overlay on the infotext
    screenshot(page, "txt2img-progress-eta")
    with page.expect_response(lambda r: "/run/" in r.url and r.request.method == "POST", timeout=60_000):
        page.click("#txt2img_skip")  # answered: the engine has the skip before batch 2 ends (150 steps)
    page.wait_for_function("document.querySelector('#txt2img_gallery')?.innerText.includes('batch 3/3')",
                           timeout=60_000)
    page.click("#txt2img_interrupt")
    page.get_by_text("Interrupted").first.wait_for(timeout=60_000)
    assert "Skipped 1" in page.inner_text("#txt2img_status")
    page.wait_for_selector("#txt2img_gallery img", timeout=30_000)
    screenshot(page, "txt2img-interrupted")
    assert page.locator("#txt2img_gallery img").count() >= 1
    assert "Seed: 77" in page.input_value("#txt2img_infotext textarea")
    saved = sorted(p for p in server.outputs.rglob("*.png") if p not in before)
    # The first image, and (issue 25 §7) the third as far as it got, marked in its infotext.
    assert len(saved) == 2 and read_generation_info(saved[0])["params"]["Seed"] == "77"
    partial = read_generation_info(saved[1])["params"]
    assert partial["Seed"] == "79" and partial["Interrupted"].startswith("at step")
    assert "picture in progress" in page.inner_text("#txt2img_status")
    assert page.locator("#txt2img_gallery img").count() >= 2 or "Interrupted" in page.input_value("#txt2img_infotext textarea")


def test_extra_seed_options_make_a_variation_and_png_info_brings_them_back(page, server):
    """Tick Extra, set a variation seed and strength, generate; the PNG records them; a paste of a
    plain infotext turns them off again, one with a variation ticks Extra."""
    assert not page.locator("#txt2img_subseed").is_visible()
    page.locator("#txt2img_subseed_show input").check()
    page.wait_for_selector("#txt2img_subseed", state="visible")
    page.fill("#txt2img_subseed input", "321")
    set_number(page, "txt2img_subseed_strength", "0.4")
    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a yellow circle on a purple background", 555, steps="3")
    page.wait_for_function(
        "document.querySelector('#txt2img_infotext textarea')?.value.includes('Variation seed: 321')", timeout=60_000)
    screenshot(page, "txt2img_variation")
    varied = newest_png(server.outputs, before)
    params = read_generation_info(varied)["params"]
    assert (params["Variation seed"], params["Variation seed strength"]) == ("321", "0.4")

    # Unticked, the same sliders do nothing: a plain seed.
    page.locator("#txt2img_subseed_show input").uncheck()
    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a yellow circle on a purple background", 556, steps="3")
    assert "Variation seed" not in read_generation_info(newest_png(server.outputs, before))["params"]

    # PNG Info -> txt2img brings the variation back and ticks Extra.
    page.click("#tab_pnginfo-button, button[role=tab]:has-text('PNG Info')")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(varied))
    page.wait_for_function("document.querySelector('#pnginfo_parameters textarea')?.value.includes('Seed: 555')")
    page.click("#pnginfo_send_txt2img")
    page.wait_for_function("document.querySelector('#txt2img_seed input')?.value === '555'")
    page.wait_for_selector("#txt2img_subseed", state="visible")
    assert page.locator("#txt2img_subseed_show input").is_checked()
    assert page.input_value("#txt2img_subseed input") == "321"
    assert page.locator("#txt2img_subseed_strength input[type=number]").first.input_value() == "0.4"
