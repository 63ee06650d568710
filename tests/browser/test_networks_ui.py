"""Networks panel and VAE picker, driven as a user does: search the LoRA cards, click one (its tag
goes into the prompt), generate, and find the tag and `Lora hashes` in the parameters; pick a VAE in
the header and find `VAE` in the next image's parameters."""
from __future__ import annotations

import re
from typing import Iterator

import pytest

from studio.checkpoints.catalog import find_model
from studio.checkpoints.loading import load_pipeline
from studio.records.pnginfo import read_generation_info
from studio.settings import Settings
from tests.browser.conftest import Server, screenshot, started_server, studio_page
from tests.browser.test_txt2img_ui import set_number
from tests.support import network_files as nf

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def networks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("networks-ui")
    settings = Settings(models_dir=root / "models", cache_dir=root / "cache")
    pipe = load_pipeline(find_model("default", settings), settings)
    for folder in ("Lora", "embeddings", "VAE"):
        (settings.models_dir / folder).mkdir(parents=True)
    nf.kohya_lora(pipe, settings.models_dir / "Lora" / "kohya.safetensors")
    nf.peft_lora(pipe, settings.models_dir / "Lora" / "other.safetensors")
    nf.embedding(pipe, settings.models_dir / "embeddings" / "shinystyle.safetensors")
    nf.vae_folder(pipe, settings.models_dir / "VAE" / "folder-vae")
    with started_server(root) as running:
        yield running


def generate(page, seed: int) -> str:
    set_number(page, "txt2img_steps", "3")
    page.fill("#txt2img_seed input", str(seed))
    page.click("#txt2img_generate")
    page.wait_for_function(
        f"document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: {seed}')", timeout=120_000)
    return page.input_value("#txt2img_infotext textarea")


def test_pick_a_lora_card_generate_and_see_its_tag_and_hash(browser, networks_server):
    with studio_page(browser, networks_server.url) as page:
        page.fill("#txt2img_prompt textarea", "a red circle")
        page.click("#txt2img_networks button, #txt2img_networks .label-wrap")
        cards = page.locator("#txt2img_lora_cards")
        cards.get_by_text("other", exact=True).wait_for()
        page.fill("#txt2img_networks_search input, #txt2img_networks_search textarea", "koh")
        page.wait_for_function("!document.querySelector('#txt2img_lora_cards')?.innerText.includes('other')")
        cards.get_by_text("kohya", exact=True).click()
        page.wait_for_function(
            "document.querySelector('#txt2img_prompt textarea')?.value === 'a red circle <lora:kohya:1>'")
        page.click("#txt2img_networks_ti-button")
        page.fill("#txt2img_networks_search input, #txt2img_networks_search textarea", "")
        page.locator("#txt2img_embedding_cards").get_by_text("shinystyle", exact=True).click()
        page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value"
                               " === 'a red circle <lora:kohya:1> shinystyle'")
        screenshot(page, "networks-panel")
        text = generate(page, 3131)
        assert text.startswith("a red circle <lora:kohya:1> shinystyle\n")
        assert re.search(r'Lora hashes: "kohya: [0-9a-f]{12}"', text)
        assert re.search(r'TI hashes: "shinystyle: [0-9a-f]{12}"', text)
        saved = sorted(networks_server.outputs.rglob("*-3131.png"))[-1]
        assert read_generation_info(saved)["fields"]["prompt"] == "a red circle <lora:kohya:1> shinystyle"

        page.locator("#sd_vae input").first.click()
        page.get_by_role("option", name="folder-vae", exact=True).click()
        text = generate(page, 3132)
        assert re.search(r"VAE hash: [0-9a-f]{10}, VAE: folder-vae", text)
        screenshot(page, "networks-vae")
