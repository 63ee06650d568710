"""SD 2.x single files (issue 15): bundled 512-base / 768-v / inpainting configs, v-prediction from
A1111's test run or a sidecar `<name>.yaml` / `.json`, OpenCLIP text tower in the LDM layout.

Reduced random files are written in the original layout (tests/support/tiny_sd2.py) and loaded
through the real single-file path, with the bundled SD 2.x configs shrunk to their size; the real
bundled configs are checked by shape and completeness in tests/test_single_file.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from studio.checkpoints import single_file
from studio.checkpoints.catalog import stable_diffusion_dir
from studio.checkpoints.manager import ModelManager
from studio.errors import ModelError
from studio.generation.engine import Engine
from studio.request import GenerationRequest
from studio.settings import Settings
from tests.support.tiny_sd2 import shrunk_configs, write_sd2_single_file


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shrunk_configs(tmp_path_factory.mktemp("configs") / "configs")


@pytest.fixture
def sd2(configs: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, one_torch_thread) -> Settings:
    monkeypatch.setattr(single_file, "SHIPPED_CONFIGS", configs)
    return settings


def write(settings: Settings, name: str, configs: Path, **kwargs) -> Path:
    return write_sd2_single_file(stable_diffusion_dir(settings) / f"{name}.safetensors", configs, **kwargs)


def test_a_v_prediction_file_is_detected_by_a1111s_test_run_and_generates(sd2, configs):
    write(sd2, "sd21-v", configs, out_bias=-3.0)  # unet(0.5) - 0.5 = -3.5 < -1: v-prediction
    write(sd2, "sd21-base", configs, out_bias=0.0)
    engine = Engine(ModelManager(sd2))
    v = engine.models.load("sd21-v")
    assert type(v.pipe).__name__ == "StableDiffusionPipeline"
    assert v.pipe.scheduler.config.prediction_type == "v_prediction"
    assert v.pipe.unet.config.sample_size == 96  # the 768-v config's size (768 at full scale)
    image = engine.run(GenerationRequest(prompt="a red circle", steps=3, seed=3, width=64, height=64)).images[0].image
    assert image.size == (64, 64) and np.asarray(image).std() > 0
    base = engine.models.load("sd21-base")
    assert base.pipe.scheduler.config.prediction_type == "epsilon" and base.pipe.unet.config.sample_size == 64


def test_the_openclip_text_tower_is_loaded_from_the_file(sd2, configs):
    path = write(sd2, "sd2-text", configs)
    pipe = ModelManager(sd2).load("sd2-text").pipe
    with safe_open(str(path), framework="pt") as handle:
        tokens = handle.get_tensor("cond_stage_model.model.token_embedding.weight")
        in_proj = handle.get_tensor("cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight")
    encoder = pipe.text_encoder
    model = getattr(encoder, "text_model", encoder)
    assert torch.equal(model.embeddings.token_embedding.weight, tokens)
    assert torch.equal(model.encoder.layers[1].self_attn.k_proj.weight, in_proj[32:64])
    assert pipe.tokenizer.pad_token == "!"  # OpenCLIP pads with "!" (id 0), not <|endoftext|>


@pytest.mark.parametrize(("sidecar", "text", "expected"), [
    ("yaml", "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: \"v\"\n",
     "v_prediction"),
    ("json", json.dumps({"parameterization": "v"}), "v_prediction"),
    ("json", json.dumps({"prediction_type": "v_prediction"}), "v_prediction"),
    ("yaml", "model:\n  params:\n    linear_start: 0.00085\n", "epsilon"),  # LDM's default: eps
])
def test_an_a1111_sidecar_decides_the_prediction_type(sd2, configs, sidecar, text, expected):
    bias = 0.0 if expected == "v_prediction" else -3.0  # the sidecar wins over the test run
    path = write(sd2, "sidecar", configs, out_bias=bias)
    path.with_suffix(f".{sidecar}").write_text(text)
    pipe = ModelManager(sd2).load("sidecar").pipe
    assert pipe.scheduler.config.prediction_type == expected
    assert pipe.unet.config.sample_size == (96 if expected == "v_prediction" else 64)


def test_a_broken_sidecar_is_a_clear_model_error(sd2, configs):
    path = write(sd2, "broken", configs)
    path.with_suffix(".yaml").write_text("model:\n  params:\n    parameterization: \"x0\"\n")
    with pytest.raises(ModelError, match=r"broken\.yaml: parameterization must be \"v\" or \"eps\""):
        ModelManager(sd2).load("broken")
    path.with_suffix(".yaml").write_text("model: [unclosed\n")
    with pytest.raises(ModelError, match=r"could not read broken\.yaml"):
        ModelManager(sd2).load("broken")


def test_an_sd2_inpainting_file_inpaints(sd2, configs):
    write(sd2, "sd2-inpaint", configs, variant="sd2-inpainting")
    engine = Engine(ModelManager(sd2))
    loaded = engine.models.load("sd2-inpaint")
    assert type(loaded.pipe).__name__ == "StableDiffusionInpaintPipeline"
    source = Image.new("RGB", (64, 64), (20, 40, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = engine.run(GenerationRequest(prompt="a cat", steps=2, seed=1, width=64, height=64, init_image=source,
                                          mask=mask, mask_blur=0, denoising_strength=1.0)).images[0].image
    assert result.size == (64, 64)
    assert tuple(np.asarray(result)[2, 2]) == (20, 40, 200)  # outside the mask: the source's pixels


@pytest.mark.parametrize(("arch", "unet_weights"), [
    ("sd2-512-base", 865_910_724), ("sd2-768-v", 865_910_724), ("sd2-inpainting", 865_925_124)])
def test_bundled_sd2_configs_build_the_released_architecture(arch, unet_weights):
    """Weight counts of stabilityai's SD 2.x UNets and of the OpenCLIP ViT-H text tower (23 layers)."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = single_file.SHIPPED_CONFIGS / arch
    text = {k: v for k, v in json.loads((folder / "text_encoder" / "config.json").read_text()).items()
            if not k.startswith("_")}
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        encoder = CLIPTextModel(CLIPTextConfig(**text))
    assert sum(p.numel() for p in unet.parameters()) == unet_weights
    assert sum(p.numel() for p in encoder.parameters()) == 340_387_840
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == ("v_prediction" if arch == "sd2-768-v" else "epsilon")
