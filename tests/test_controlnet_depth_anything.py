"""depth_anything: transformers' Depth-Anything from sd-webui-controlnet's file (the original
repository's state dict) or a transformers folder under models/ControlNet/annotators/, tiny and random."""
from __future__ import annotations

import base64
import io

import numpy as np
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
