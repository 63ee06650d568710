"""seg_ofade20k / seg_ufade20k: transformers' OneFormer / UperNet from a transformers folder under
models/ControlNet/annotators/ (tiny, random), each class drawn in its ADE20K colour; the original
.pth files are refused naming the folder to place. inpaint_only+lama stays refused, pointing to inpaint_only."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from studio.control.aux import import_aux
from studio.control.preprocessors import PREPROCESSORS, annotator_dirs, run_preprocessor
from tests.support.served import api_client
from tests.support.tiny_annotators import save_oneformer_folder, save_upernet_folder
from tests.test_controlnet_detectors import photo

SAVERS = {"seg_ofade20k": save_oneformer_folder, "seg_ufade20k": save_upernet_folder}


@pytest.mark.parametrize("module", list(SAVERS))
def test_segmentation_runs_from_a_transformers_folder_in_ade20k_colours(tmp_path, module):
    annotators = tmp_path / "ControlNet" / "annotators"
    annotators.mkdir(parents=True)
    (annotators / PREPROCESSORS[module].weights).write_bytes(b"")  # sd-webui-controlnet's file alone: refused
    reason = PREPROCESSORS[module].unavailable_reason(annotator_dirs(tmp_path))
    assert PREPROCESSORS[module].folder + "/" in reason and "not readable here" in reason
    SAVERS[module](annotators)
    assert PREPROCESSORS[module].unavailable_reason(annotator_dirs(tmp_path)) is None
    segmented = run_preprocessor(module, photo(), 0, 0, annotator_dirs(tmp_path))
    assert segmented.size == (64, 64) and segmented.mode == "RGB"
    palette = {tuple(colour) for colour in import_aux("controlnet_aux.util").ade_palette()}
    colours = {tuple(pixel) for pixel in np.asarray(segmented).reshape(-1, 3)}
    assert colours <= palette


def test_detect_route_segments_and_refuses_lama_naming_inpaint_only(settings):
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    with api_client(settings) as client:
        body = {"controlnet_module": "seg_ufade20k", "controlnet_processor_res": 64, "controlnet_input_images": [image]}
        missing = client.post("/controlnet/detect", json=body)
        assert missing.status_code == 422 and "upernet-ade20k/" in missing.json()["detail"]
        save_upernet_folder(settings.models_dir / "ControlNet" / "annotators")
        found = client.post("/controlnet/detect", json=body)
        assert found.status_code == 200, found.text
        assert Image.open(io.BytesIO(base64.b64decode(found.json()["images"][0]))).size == (64, 64)
        lama = client.post("/controlnet/detect", json={**body, "controlnet_module": "inpaint_only+lama",
                                                       "controlnet_masks": [image]})
        assert lama.status_code == 422 and "use inpaint_only" in lama.json()["detail"]


def test_a_partial_folder_is_the_requests_error_naming_it(tmp_path):
    folder = tmp_path / "ControlNet" / "annotators" / "upernet-ade20k"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "upernet"}')  # no weights
    with pytest.raises(ValueError, match="upernet-ade20k/ could not be loaded"):
        run_preprocessor("seg_ufade20k", photo(), 0, 0, annotator_dirs(tmp_path))
