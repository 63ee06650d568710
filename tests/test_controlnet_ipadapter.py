"""IP-Adapter (image prompt) units through diffusers' load_ip_adapter from local files: a tiny random
IP-Adapter for the default model in models/ipadapter/ and a tiny CLIP image encoder in
models/clip_vision/, written here; refused clearly when either is missing."""
from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from studio.errors import ModelError
from studio.request import ControlUnit, GenerationRequest

ADAPTER = "ip-adapter_sd15_tiny.safetensors"
BASE = GenerationRequest(prompt="a red square", sampler_name="Euler", steps=3, seed=17, width=64, height=64)
EMBED = 16  # the image encoder's projection size


def picture(colour: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (64, 64), colour)
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(255 - colour[0], 255 - colour[1], 255 - colour[2]))
    return image


def write_ip_adapter(unet: torch.nn.Module, path: Path, seed: int = 0) -> Path:
    """image_proj.* (4 tokens) and ip_adapter.<id>.to_k_ip/to_v_ip for every cross-attention, in
    the numbering diffusers reads (1, 3, 5, ... in attn_processors order)."""
    generator = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(cross * 4, EMBED, generator=generator) * 0.5,
             "image_proj.proj.bias": torch.zeros(cross * 4),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        attention = unet.get_submodule(name.removesuffix(".processor"))
        hidden = attention.to_k.out_features
        for part in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key}.{part}.weight"] = torch.randn(hidden, cross, generator=generator) * 0.5
        key += 2
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def write_image_encoder(folder: Path) -> Path:
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=EMBED)
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapter_files(engine) -> Iterator[Path]:
    models = engine.models.settings.models_dir
    write_ip_adapter(engine.models.current().pipe.unet, models / "ipadapter" / ADAPTER)
    encoder = write_image_encoder(models / "clip_vision" / "tiny-clip-vision")
    yield models
    shutil.rmtree(models / "ipadapter")
    shutil.rmtree(encoder.parent)


def unit(image: Image.Image, weight: float = 1.0) -> ControlUnit:
    return ControlUnit(control_type="ip-adapter", image=image, module="ip-adapter_clip_sd15", weight=weight)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_ip_adapter_unit_steers_the_image_and_is_taken_out_after(engine, adapter_files):
    plain = pixels(engine.run(BASE).images[0].image)
    red = engine.run(BASE.replace(controlnet_units=(unit(picture((220, 20, 20))),)))
    green = engine.run(BASE.replace(controlnet_units=(unit(picture((20, 200, 40))),)))
    assert red.controls.titles == (ADAPTER,)
    assert np.abs(pixels(red.images[0].image) - plain).mean() > 0.5
    assert np.abs(pixels(red.images[0].image) - pixels(green.images[0].image)).mean() > 0.5  # the image prompt matters
    weak = engine.run(BASE.replace(controlnet_units=(unit(picture((220, 20, 20)), weight=0.2),)))
    assert np.abs(pixels(weak.images[0].image) - plain).mean() < np.abs(pixels(red.images[0].image) - plain).mean()
    unet = engine.models.current().pipe.unet
    assert unet.encoder_hid_proj is None  # unloaded: the next run is the bare model's
    assert np.array_equal(pixels(engine.run(BASE).images[0].image), plain)


def test_ip_adapter_beside_a_controlnet_unit(engine, adapter_files):
    canny = ControlUnit(control_type="canny", image=picture((200, 30, 30)), module="canny")
    result = engine.run(BASE.replace(steps=2, controlnet_units=(canny, unit(picture((20, 200, 40))))))
    assert result.controls.titles == ("controlnet-canny", ADAPTER)


def test_ip_adapter_over_http(engine, adapter_files, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from studio.service.container import build_services
    from studio.settings import Settings
    from studio.web.auth import AccessPolicy
    from studio.web.mount import build_api

    settings = Settings(models_dir=adapter_files, outputs_dir=tmp_path / "out", extensions_dir=tmp_path / "ext",
                        cache_dir=tmp_path / "cache", styles_file=tmp_path / "styles.csv")
    app = FastAPI()
    app.include_router(build_api(build_services(settings, engine=engine), AccessPolicy()))
    buffer = io.BytesIO()
    picture((220, 20, 20)).save(buffer, format="PNG")
    arg = {"module": "ip-adapter_clip_sd15", "model": "ip-adapter_sd15_tiny",
           "image": base64.b64encode(buffer.getvalue()).decode(), "weight": 0.8}
    with TestClient(app) as client:
        assert "ip-adapter_sd15_tiny.safetensors" in client.get("/controlnet/model_list").json()["model_list"]
        types = client.get("/controlnet/control_types").json()["control_types"]["IP-Adapter"]
        assert types["model_list"] == ["None", ADAPTER] and types["default_option"] == "ip-adapter_clip_sd15"
        answer = client.post("/sdapi/v1/txt2img", json={"prompt": "a red square", "steps": 2, "width": 64, "height": 64,
                                                          "seed": 3, "alwayson_scripts": {"controlnet": {"args": [arg]}}})
        assert answer.status_code == 200, answer.text


def test_missing_adapter_or_encoder_is_refused_clearly(engine, adapter_files):
    encoder = adapter_files / "clip_vision" / "tiny-clip-vision"
    hidden = adapter_files / "elsewhere"  # out of models/clip_vision
    encoder.rename(hidden)
    try:
        with pytest.raises(ModelError, match="CLIP image encoder.*models/clip_vision"):
            engine.run(BASE.replace(controlnet_units=(unit(picture((1, 2, 3))),)))
    finally:
        hidden.rename(encoder)
    with pytest.raises(ModelError, match="nope not found.*models/ipadapter"):
        engine.run(BASE.replace(controlnet_units=(ControlUnit(**{**unit(picture((1, 2, 3))).__dict__, "model": "nope"}),)))
