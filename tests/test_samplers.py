import gradio as gr
import pytest

from studio.service import Studio
from studio.models import DEFAULT_MODEL_DIR
from studio.samplers import SAMPLERS, UnknownSamplerError, make_scheduler, resolve_sampler_name
from studio.ui.build import build_ui


def default_scheduler_config():
    import json

    return json.loads((DEFAULT_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_registered_name_builds_a_fresh_scheduler_from_the_model_config(name):
    config = default_scheduler_config()
    first, second = make_scheduler(name, config), make_scheduler(name, config)
    assert isinstance(first, SAMPLERS[name].scheduler) and first is not second
    for key, value in SAMPLERS[name].kwargs.items():
        assert first.config[key] == value
    assert first.config["prediction_type"] == config["prediction_type"]


def test_aliases_resolve_and_unknown_names_say_what_exists():
    assert resolve_sampler_name("k_dpmpp_2m_ka") == "DPM++ 2M Karras"
    assert resolve_sampler_name("euler a") == "Euler a"
    with pytest.raises(UnknownSamplerError, match="unknown sampler 'Nope'; choose one of: Euler, Euler a"):
        resolve_sampler_name("Nope")


def test_ui_sampler_dropdowns_offer_exactly_the_registry(shared_settings):
    demo = build_ui(Studio.create(shared_settings).ui_context())
    dropdowns = [block for block in demo.blocks.values()
                 if isinstance(block, gr.Dropdown) and (block.elem_id or "").endswith("_sampling")]
    assert {d.elem_id for d in dropdowns} >= {"txt2img_sampling", "img2img_sampling", "inpaint_sampling"}
    for dropdown in dropdowns:
        assert [value for _, value in dropdown.choices] == list(SAMPLERS)
