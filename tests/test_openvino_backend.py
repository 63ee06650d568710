"""`--backend openvino`: the UNet converted with plain openvino, run behind the same pipeline.

One conversion for the whole module (the embedded default model's UNet, into the session's cache
folder); every other test reads it from the cache. fp32 precision hint: results close to eager.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from studio.checkpoints import openvino_parts, openvino_unet
from studio.cli.main import build_parser
from studio.cli.settings_flags import settings_from_args
from studio.errors import ModelError
from studio.request import ControlUnit, GenerationRequest, RequestError
from studio.service.option_keys import BACKENDS
from tests.support.served import api_client

pytest.importorskip("openvino")  # the openvino extra (CI installs it)
pytestmark = pytest.mark.openvino

BASE = GenerationRequest(prompt="a red circle", seed=5, steps=3, width=64, height=64)


@pytest.fixture(scope="module", autouse=True)
def fp32_hint() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STUDIO_OPENVINO_PRECISION", "f32")
        yield


@pytest.fixture(scope="module")
def converted(engine, shared_settings):
    """The default model's UNet as OpenVINO runs it (converted once here, or found in the cache)."""
    model = engine.models.current()
    return engine.compiled.unet(model, shared_settings)


@pytest.fixture
def on_openvino(engine) -> Iterator[None]:
    choice = engine.backend_choice
    engine.backend_choice = lambda: "openvino"
    try:
        yield
    finally:
        engine.backend_choice = choice


def test_unet_output_matches_eager_at_several_sizes_without_reconverting(engine, converted):
    unet = engine.models.current().pipe.unet
    before = engine.compiled.conversions["unet"]
    context = unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(0)
    for batch, size, tokens in ((2, 8, 77), (1, 12, 154), (3, 9, 77), (1, 65, 77)):  # batch, latent size, prompt length change
        sample = torch.randn(batch, unet.config.in_channels, size, size + 2, generator=generator)
        text = torch.randn(batch, tokens, context, generator=generator)
        with torch.no_grad():
            expected = unet(sample, torch.tensor(400), text).sample
            got = converted(sample, torch.tensor(400), text).sample
        assert got.shape == expected.shape and got.dtype == expected.dtype
        assert (got - expected).abs().mean() < 1e-4 * max(1.0, float(expected.abs().mean()))
    assert engine.compiled.conversions["unet"] == before  # dynamic shapes: no new conversion for a new size
    assert converted.config is unet.config and converted.device == unet.device and converted.dtype == unet.dtype


def test_second_load_reads_the_cache(engine, converted, shared_settings):
    model = engine.models.current()
    folder = shared_settings.cache_dir / "openvino" / openvino_unet.weights_key(model.pipe.unet, model.hash)
    ir = folder / "unet.xml"
    assert ir.is_file() and (folder / "unet.bin").stat().st_size > 1000
    stamp, before = ir.stat().st_mtime_ns, engine.compiled.conversions["unet"]
    engine.compiled.clear()  # as after a restart: only the disk cache is left
    again = engine.compiled.unet(model, shared_settings)
    assert again is not converted and not again.converted and ir.stat().st_mtime_ns == stamp
    assert engine.compiled.conversions["unet"] == before


def test_weights_key_follows_the_weights(engine):
    model = engine.models.current()
    unet = model.pipe.unet
    key = openvino_unet.weights_key(unet, model.hash)
    assert openvino_unet.weights_key(unet, "another-model") != key
    parameter = next(unet.parameters())
    with torch.no_grad():
        parameter.flatten()[0] += 1.0
        try:
            assert openvino_unet.weights_key(unet, model.hash) != key  # a fused LoRA changes weights: reconvert
        finally:
            parameter.flatten()[0] -= 1.0
    assert openvino_unet.weights_key(unet, model.hash) == key


def test_a_bf16_channels_last_unet_converts_to_the_same_outputs(engine, tmp_path):
    """The studio's CPU bf16 layout (channels_last): OpenVINO's converter read those weights as if
    contiguous (NaN outputs, a segfault at SD1.5 size). Converted right, and the layout is kept."""
    import copy

    unet = copy.deepcopy(engine.models.current().pipe.unet).to(torch.bfloat16).to(memory_format=torch.channels_last)
    conv = unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    stand = openvino_unet.openvino_unet(unet, tmp_path, "bf16-layout", hint="f32")
    assert stand.converted
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)  # eager's layout is back
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, unet.config.in_channels, 8, 8, generator=generator)
    text = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        expected = unet(sample.bfloat16(), torch.tensor(400), text.bfloat16()).sample.float()
        got = stand(sample, torch.tensor(400), text).sample.float()
    assert torch.isfinite(got).all()
    assert (got - expected).abs().mean() < 0.05 * max(1.0, float(expected.abs().mean()))  # bf16 rounding only


def test_engine_makes_an_image_close_to_eager(engine, converted, on_openvino):
    before = engine.compiled.conversions["unet"]
    result = engine.run(BASE)
    engine.backend_choice = lambda: "eager"
    eager = engine.run(BASE)
    assert engine.compiled.conversions["unet"] == before
    got, expected = (np.asarray(r.images[0].image, dtype=np.float32) for r in (result, eager))
    assert got.shape == expected.shape == (64, 64, 3)
    assert np.abs(got - expected).mean() < 2.0  # of 255: the same picture
    assert engine.models.current().pipe.unet is not converted  # swapped back after the run


def test_another_size_and_hires_fix_run_on_the_same_conversion(engine, converted, on_openvino):
    before = engine.compiled.conversions["unet"]
    result = engine.run(BASE.replace(width=104, height=72, steps=2, enable_hr=True, hr_scale=1.5,
                                     hr_second_pass_steps=1, denoising_strength=0.5))
    assert result.images[0].image.size == (152, 104)  # hires sizes round to 8 px: 19x13 latents
    assert engine.compiled.conversions["unet"] == before


@pytest.mark.parametrize("change, named", [
    ({"cache_interval": 2}, "cache_interval"),
    ({"token_merging_ratio": 0.3}, "token_merging_ratio"),
    ({"controlnet_units": (ControlUnit(control_type="canny", image=Image.new("RGB", (64, 64))),)}, "ControlNet"),
    ({"refiner_checkpoint": "some-refiner"}, "refiner"),
])
def test_unsupported_features_are_refused_by_name(engine, on_openvino, change, named):
    with pytest.raises(RequestError, match=named) as refused:
        engine.run(BASE.replace(**change))
    assert "backend" in str(refused.value)


def test_flag_setting_and_option_agree():
    args = build_parser().parse_args(["generate", "--prompt", "x", "--backend", "openvino"])
    assert settings_from_args(args).backend == "openvino"
    assert BACKENDS == openvino_unet.BACKENDS
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--backend", "tensorrt"])
    assert openvino_unet.precision_hint(fast_bf16=False) == "f32"


def test_http_option_switches_the_backend(engine, converted, shared_settings):
    choice = engine.backend_choice
    body = {"prompt": "a red circle", "seed": 3, "steps": 2, "width": 64, "height": 64}
    with api_client(shared_settings, engine) as client:
        try:
            assert client.post("/sdapi/v1/options", json={"backend": "openvino"}).status_code == 200
            assert client.get("/sdapi/v1/options").json()["backend"] == "openvino"
            done = client.post("/sdapi/v1/txt2img", json=body)
            assert done.status_code == 200 and len(done.json()["images"]) == 1
            refused = client.post("/sdapi/v1/txt2img", json={**body, "override_settings": {"cache_interval": 2}})
            assert 400 <= refused.status_code < 500 and "openvino" in refused.text
            bad = client.post("/sdapi/v1/options", json={"backend": "tensorrt"})
            assert bad.status_code == 422 or bad.status_code == 400
            assert "backend" in json.dumps(bad.json())
        finally:
            client.post("/sdapi/v1/options", json={"backend": "auto"})  # config.json is shared by the session
            engine.backend_choice = choice


def test_lora_is_fused_into_its_own_conversion(settings):
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from tests.support import network_files

    engine = Engine(ModelManager(settings))
    (settings.models_dir / "Lora").mkdir(parents=True)
    network_files.kohya_lora(engine.models.current().pipe, settings.models_dir / "Lora" / "styled.safetensors")
    with_lora = BASE.replace(prompt="a red circle <lora:styled:1>")
    eager_lora, eager_plain = engine.run(with_lora), engine.run(BASE)
    engine.backend_choice = lambda: "openvino"
    before = engine.compiled.conversions["unet"]
    fused = engine.run(with_lora)
    assert engine.compiled.conversions["unet"] == before + 1  # this LoRA state's own graph
    engine.run(with_lora)
    assert engine.compiled.conversions["unet"] == before + 1  # the same LoRA state again: compiled already
    got, lora, plain = (np.asarray(r.images[0].image, dtype=np.float32) for r in (fused, eager_lora, eager_plain))
    assert np.abs(lora - plain).mean() > 4 * max(np.abs(got - lora).mean(), 0.5)  # the LoRA's effect is kept


def test_a_cfgpp_image_leaves_openvino_usable_and_a_loha_is_still_refused(settings):
    """A CFG++ sampler leaves its reader of the UNet's output (a forward hook) on the UNet: that is no
    LyCORIS network, so OpenVINO runs after it; a LoHa's hooks are refused by name."""
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from tests.support import network_files

    engine = Engine(ModelManager(settings))
    (settings.models_dir / "Lora").mkdir(parents=True)
    network_files.loha_lora(engine.models.current().pipe, settings.models_dir / "Lora" / "hada.safetensors")
    engine.backend_choice = lambda: "eager"
    engine.run(BASE.replace(sampler_name="DDIM CFG++"))
    assert any(module._forward_hooks for module in engine.models.current().pipe.unet.modules())
    engine.backend_choice = lambda: "openvino"
    image = np.asarray(engine.run(BASE).images[0].image, dtype=np.float32)
    assert image.shape == (64, 64, 3) and image.std() > 1  # an image, not a refusal
    with pytest.raises(RequestError, match="LyCORIS"):
        engine.run(BASE.replace(prompt="a red circle <lora:hada:1>"))


def test_performance_page_row_reads_the_benchmark_file(tmp_path):
    from benchmarks.report import openvino_rows

    assert openvino_rows({"results_dir": str(tmp_path)})[0][2] == "not measured"
    (tmp_path / "20260101T000000Z-openvino.json").write_text(json.dumps({
        "openvino": "2026.4.1-1-abc", "size": 512, "rounds": 3, "load_average": [9.5, 9, 9],
        "per_step_cpu_s": {"eager bf16": 11.6, "openvino bf16": 9.0},
        "speed_vs_eager_bf16": {"eager bf16": 1.0, "openvino bf16": 1.29},
        "difference_vs_eager_fp32": {"eager bf16": 0.012, "openvino bf16": 0.027}}))
    name, figures, verdict = openvino_rows({"results_dir": str(tmp_path)})[0]
    assert "512²" in name and "openvino bf16 9.00 s (1.29 ×, difference 0.027)" in figures and "load 9.5" in figures
    assert verdict.startswith("faster")


def test_sdxl_unet_with_its_added_conditions_runs_on_openvino(settings):
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from tests.support.tiny_sdxl import write_tiny_sdxl_base

    write_tiny_sdxl_base(settings.models_dir / "Stable-diffusion" / "tinyxl")
    engine = Engine(ModelManager(settings))
    request = BASE.replace(steps=2, model=next(t for t in engine.models.titles() if "tinyxl" in t))
    eager = engine.run(request)
    engine.backend_choice = lambda: "openvino"
    before = engine.compiled.conversions["unet"]
    converted = engine.run(request)
    assert engine.compiled.conversions["unet"] == before + 1  # pooled prompt and size conditioning are graph inputs
    got, expected = (np.asarray(r.images[0].image, dtype=np.float32) for r in (converted, eager))
    assert expected.std() > 5 and np.abs(got - expected).mean() < 2.0


# --- VAE decoder and text encoders (studio/checkpoints/openvino_parts.py) -----------------------------

def test_vae_decoder_matches_eager_and_keeps_the_decode_interface(engine, shared_settings):
    model = engine.models.current()
    vae = model.pipe.vae
    decoder = engine.compiled.decoder(model, shared_settings, vae)
    before = dict(engine.compiled.conversions)
    generator = torch.Generator().manual_seed(1)
    for batch, height, width in ((1, 8, 8), (2, 13, 19)):  # dynamic batch and size: one conversion
        latents = torch.randn(batch, vae.config.latent_channels, height, width, generator=generator)
        with torch.no_grad():
            expected = vae.decode(latents).sample
            vae.decoder = decoder
            try:
                got, = vae.decode(latents, return_dict=False)
            finally:
                vae.decoder = decoder.eager
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        assert got.shape == expected.shape == (batch, 3, height * scale, width * scale) and got.dtype == expected.dtype
        assert (got - expected).abs().mean() < 1e-4
    assert dict(engine.compiled.conversions) == before


def test_text_encoder_matches_eager_with_clip_skip(engine, shared_settings):
    from studio.prompting.conditioning import prepare_prompts

    model = engine.models.current()
    pipe = model.pipe
    encoder = engine.compiled.encoder(model, shared_settings, "text_encoder", pipe.text_encoder)
    ids = torch.randint(0, pipe.text_encoder.get_input_embeddings().weight.shape[0], (2, 77),
                        generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = pipe.text_encoder(ids, output_hidden_states=True), encoder(ids, output_hidden_states=True)
    assert type(got) is type(expected) and len(got.hidden_states) == len(expected.hidden_states)
    for a, b in ((got[0], expected[0]), (got.pooler_output, expected.pooler_output),
                 (got.hidden_states[-2], expected.hidden_states[-2])):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-3
    for clip_skip in (1, 2):  # our prompting reads the last or an earlier hidden state
        eager = prepare_prompts(pipe, "a red (circle:1.2)", "blue", 3, clip_skip).pipeline_kwargs(1)
        with engine.compiled.text_encoders_backend(pipe, model, shared_settings, "openvino"):
            converted = prepare_prompts(pipe, "a red (circle:1.2)", "blue", 3, clip_skip).pipeline_kwargs(1)
        assert pipe.text_encoder is encoder.eager  # swapped back
        assert (converted["prompt_embeds"] - eager["prompt_embeds"]).abs().max() < 1e-3
    with pytest.raises(ModelError, match="77-token"):
        encoder(ids[:, :20])


def test_engine_runs_decoder_and_text_encoder_on_openvino_and_reads_the_cache(engine, converted, shared_settings,
                                                                              on_openvino):
    model, one_step = engine.models.current(), BASE.replace(steps=1)
    engine.run(one_step)  # converts (or finds) every part
    before = dict(engine.compiled.conversions)
    decoder, encoder = engine.compiled.held("vae_decoder"), engine.compiled.held("text_encoder")
    calls = decoder.calls, encoder.calls
    engine.run(one_step.replace(seed=6))
    assert decoder.calls > calls[0] and encoder.calls > calls[1]  # the run went through both
    assert model.pipe.vae.decoder is decoder.eager and model.pipe.text_encoder is encoder.eager
    folder = shared_settings.cache_dir / "openvino"
    files = {part: folder / key / f"{part}.xml" for part, key in (
        ("vae_decoder", openvino_parts.decoder_key(model.pipe.vae, model.hash)),
        ("text_encoder", openvino_parts.encoder_key(model.pipe.text_encoder, model.hash)))}
    assert all(path.is_file() for path in files.values())
    stamps = {part: path.stat().st_mtime_ns for part, path in files.items()}
    engine.compiled.clear()  # as after a restart: only the disk cache is left
    engine.run(one_step)
    assert dict(engine.compiled.conversions) == before
    assert {part: path.stat().st_mtime_ns for part, path in files.items()} == stamps


def test_textual_inversion_gets_its_own_text_encoder_conversion(settings, shared_settings, converted):
    from dataclasses import replace

    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from tests.support import network_files

    # its own models folder (the embedding), the session's cache: the UNet and VAE decoder are found there
    engine = Engine(ModelManager(replace(settings, cache_dir=shared_settings.cache_dir)))
    pipe = engine.models.current().pipe
    (settings.models_dir / "embeddings").mkdir(parents=True)
    network_files.embedding(pipe, settings.models_dir / "embeddings" / "ovstyle.safetensors")
    request = BASE.replace(prompt="a red circle ovstyle")
    eager = engine.run(request)
    key = openvino_parts.encoder_key(pipe.text_encoder, engine.models.current().hash)
    engine.backend_choice = lambda: "openvino"
    before = engine.compiled.conversions["text_encoder"]
    converted = engine.run(request)
    assert engine.compiled.conversions["text_encoder"] == before + 1
    assert engine.compiled.held_key("text_encoder") == key  # the table with the embedding's rows
    weight = pipe.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[-1, 0] += 1.0  # another embedding of the same length: other rows, another key
        try:
            assert openvino_parts.encoder_key(pipe.text_encoder, engine.models.current().hash) != key
        finally:
            weight[-1, 0] -= 1.0
    got, expected = (np.asarray(r.images[0].image, dtype=np.float32) for r in (converted, eager))
    assert np.abs(got - expected).mean() < 2.0
