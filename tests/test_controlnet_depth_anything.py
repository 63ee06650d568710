"""depth_anything: transformers' Depth-Anything from sd-webui-controlnet's file (the original
repository's state dict) or a transformers folder under models/ControlNet/annotators/, tiny and random."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from studio.control import depth_anything
from studio.control.preprocessors import PREPROCESSORS, annotator_dirs, run_preprocessor
from tests.support.served import api_client
from tests.support.tiny_annotators import (
    original_state,
    save_depth_anything_file,
    save_depth_anything_folder,
    tiny_depth_anything,
)
from tests.test_controlnet_detectors import photo


def test_the_original_state_dict_maps_onto_every_transformers_weight():
    model = tiny_depth_anything()
    state = original_state(model)
    assert "pretrained.blocks.0.attn.qkv.weight" in state and "depth_head.scratch.refinenet1.out_conv.weight" in state
    renamed = depth_anything.to_transformers(state)
    assert set(renamed) == set(model.state_dict())
    assert all(torch.equal(renamed[key], value) for key, value in model.state_dict().items())
    config = depth_anything.config_from_state(state)
    assert (config.backbone_config.hidden_size, config.backbone_config.num_hidden_layers) == (64, 4)
    assert list(config.neck_hidden_sizes) == [8, 16, 32, 32] and config.fusion_hidden_size == 16


def test_file_and_folder_give_the_same_depth(tmp_path):
    models = tmp_path / "models"
    reason = PREPROCESSORS["depth_anything"].unavailable_reason(annotator_dirs(models))
    assert "depth_anything_vitl14.pth" in reason and "depth-anything/" in reason
    save_depth_anything_file(models / "ControlNet" / "annotators")
    from_file = run_preprocessor("depth_anything", photo(), 0, 0, annotator_dirs(models))
    save_depth_anything_folder(tmp_path / "other" / "ControlNet" / "annotators")
    from_folder = run_preprocessor("depth_anything", photo(), 0, 0, annotator_dirs(tmp_path / "other"))
    pixels = np.asarray(from_file)
    assert from_file.size == (64, 64) and from_file.mode == "RGB"
    assert (pixels[..., 0] == pixels[..., 2]).all() and pixels.min() == 0 and pixels.max() == 255  # grey, min-max
    assert np.array_equal(pixels, np.asarray(from_folder))


def test_detect_route_runs_depth_anything(settings):
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    body = {"controlnet_module": "depth_anything", "controlnet_processor_res": 64,
            "controlnet_input_images": [base64.b64encode(buffer.getvalue()).decode()]}
    with api_client(settings) as client:
        missing = client.post("/controlnet/detect", json=body)
        assert missing.status_code == 422 and "depth_anything_vitl14.pth" in missing.json()["detail"]
        save_depth_anything_file(settings.models_dir / "ControlNet" / "annotators")
        found = client.post("/controlnet/detect", json=body)
        assert found.status_code == 200, found.text
        image = Image.open(io.BytesIO(base64.b64decode(found.json()["images"][0])))
        assert image.size == (64, 64) and np.asarray(image).std() > 0


def test_a_depth_unit_runs_depth_anything_and_its_controlnet(engine):
    from studio.request import ControlUnit, GenerationRequest
    from tests.support.tiny_controlnets import save_random_controlnet

    models = engine.models.settings.models_dir
    annotators = models / "ControlNet" / "annotators"
    net = save_random_controlnet(engine.models.current().pipe.unet, models / "ControlNet" / "control_v11f1p_sd15_depth",
                                 seed=6)
    weights = save_depth_anything_file(annotators)
    try:
        base = GenerationRequest(prompt="a red ball", sampler_name="Euler", steps=3, seed=9, width=64, height=64)
        unit = ControlUnit(control_type="depth", image=photo(), module="depth_anything")
        result = engine.run(base.replace(controlnet_units=(unit,)))
        assert result.controls.titles == ("control_v11f1p_sd15_depth",)
        control = np.asarray(result.controls.images[0])
        assert control.shape == (64, 64, 3) and control.min() == 0 and control.max() == 255
        plain = np.asarray(engine.run(base).images[0].image, dtype=float)
        assert np.abs(np.asarray(result.images[0].image, dtype=float) - plain).mean() > 0.5
    finally:
        import shutil

        shutil.rmtree(net)
        weights.unlink()
        engine.models.current().controlnets.pop(net.name, None)


def test_a_broken_file_is_the_requests_error_naming_it(tmp_path):
    folder = tmp_path / "ControlNet" / "annotators"
    folder.mkdir(parents=True)
    (folder / "depth_anything_vitl14.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="depth_anything_vitl14.pth could not be loaded"):
        run_preprocessor("depth_anything", photo(), 0, 0, annotator_dirs(tmp_path))
