"""Few-step presets in the txt2img tab (issue 26 §2): picking one sets sampler, schedule, steps and CFG;
a few-step LoRA named in the prompt is recognised and its preset applied with one click; the image
made then carries the preset's settings."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from safetensors.torch import save_file

from studio.records.pnginfo import read_generation_info
from tests.browser.conftest import Server, screenshot, started_server, studio_page
from tests.browser.test_txt2img_ui import newest_png, pick

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def preset_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("presets")
    (root / "models" / "Lora").mkdir(parents=True)
    # Its metadata (kohya's ss_output_name) says LCM-LoRA; the file name does not.
    save_file({"unused": torch.zeros(1)}, str(root / "models" / "Lora" / "speedup.safetensors"),
              metadata={"ss_output_name": "lcm-lora-sdv1-5"})
    with started_server(root) as running:
        yield running


def value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input").first.input_value()


def wait_value(page, elem_id: str, expected: str) -> None:
    page.wait_for_function(f"document.querySelector('#{elem_id} input')?.value == '{expected}'", timeout=60_000)


def test_preset_sets_the_fields_and_a_recognised_lora_applies_its_own(browser, preset_server):
    with studio_page(browser, preset_server.url) as page:
        pick(page, "#txt2img_preset", "turbo")
        wait_value(page, "txt2img_steps", "1")
        assert value(page, "txt2img_sampling") == "Euler a" and value(page, "txt2img_scheduler") == "SGM Uniform"
        assert value(page, "txt2img_cfg_scale") == "1"

        page.fill("#txt2img_prompt textarea", "a red circle on a white background <lora:speedup:0>")
        page.locator("#txt2img_neg_prompt textarea").click()  # the prompt loses focus: recognised
        page.wait_for_function("document.querySelector('#txt2img_preset_hint')?.innerText.includes(\"preset 'lcm'\")",
                               timeout=60_000)
        page.click("#txt2img_preset_use")
        wait_value(page, "txt2img_steps", "4")
        assert value(page, "txt2img_sampling") == "LCM"
        screenshot(page, "txt2img-few-step-preset")

        before = set(preset_server.outputs.rglob("*.png"))
        page.fill("#txt2img_seed input", "77")
        page.click("#txt2img_generate")
        page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 77')",
                               timeout=120_000)
        params = read_generation_info(newest_png(preset_server.outputs, before))["params"]
        assert (params["Sampler"], params["Steps"], params["CFG scale"]) == ("LCM", "4", "1")
