"""Issue 25 items 1-2: the Sampling method dropdown offers what the loaded model runs (the samplers
once refused on the default model included), and the Schedule type dropdown what the chosen
sampler takes; Euler a on Karras, refused before, makes an image with the schedule recorded."""
from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_txt2img_ui import generate, newest_png
from tests.browser.test_txt2img_ui import pick as pick_option

pytestmark = pytest.mark.browser


def pick(page, dropdown: str, option: str) -> None:
    """Pick, then wait until the list has closed, so the next list read is the next dropdown's."""
    pick_option(page, dropdown, option)
    page.get_by_role("option").first.wait_for(state="detached", timeout=30_000)


def options(page, dropdown: str) -> list[str]:
    page.locator(f"{dropdown} input").first.click()
    page.get_by_role("option").first.wait_for(timeout=30_000)
    names = [name.replace("✓", "").strip() for name in page.get_by_role("option").all_inner_texts()]
    page.locator(f"{dropdown} input").first.press("Escape")
    page.locator(f"{dropdown} input").first.blur()
    page.get_by_role("option").first.wait_for(state="detached", timeout=30_000)
    return names


def test_sampler_and_schedule_type_offer_what_runs_and_euler_a_karras_makes_an_image(page, server):
    from studio.records.pnginfo import read_generation_info

    samplers = options(page, "#txt2img_sampling")
    for name in ("Euler a", "PLMS", "Heun", "DPM2 a Karras", "DPM++ 2S a", "DPM++ 2M SDE Heun", "Restart",
                 "DPM fast", "DPM adaptive", "DDIM CFG++"):
        assert name in samplers, samplers

    pick(page, "#txt2img_sampling", "UniPC")  # diffusers' UniPC: only the schedules it has options for
    page.wait_for_function("document.querySelector('#txt2img_scheduler input')?.value === 'Automatic'")
    unipc = options(page, "#txt2img_scheduler")
    assert unipc[0] == "Automatic" and "Karras" in unipc and "Polyexponential" not in unipc, unipc

    pick(page, "#txt2img_sampling", "DPM++ 2M Karras")  # the name carries its schedule
    page.wait_for_timeout(500)
    assert options(page, "#txt2img_scheduler") == ["Automatic", "Karras"]

    pick(page, "#txt2img_sampling", "Euler a")  # a k-diffusion sampler: all twelve
    page.wait_for_timeout(500)
    euler_a = options(page, "#txt2img_scheduler")
    assert len(euler_a) == 12 and {"Karras", "Polyexponential", "Align Your Steps", "KL Optimal"} <= set(euler_a)
    pick(page, "#txt2img_scheduler", "Karras")
    before = set(server.outputs.rglob("*.png"))
    generate(page, "txt2img", "a red circle on a blue background", 2511, steps="4")
    params = read_generation_info(newest_png(server.outputs, before))["params"]
    assert (params["Sampler"], params["Schedule type"]) == ("Euler a", "Karras")
    screenshot(page, "sampler-schedule-choices")

    pick(page, "#txt2img_sampling", "UniPC")  # a schedule the new sampler does not take falls back
    page.wait_for_function("document.querySelector('#txt2img_scheduler input')?.value === 'Karras'")
    pick(page, "#txt2img_scheduler", "Automatic")
