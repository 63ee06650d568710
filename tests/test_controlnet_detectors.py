"""Detectors that need weight files: found under models/ControlNet/annotators/ (or models/annotators/)
by the file name lllyasviel/Annotators gives them, refused naming that file when it is absent, and
run by controlnet-aux's code from a file of random weights of the real architecture written here."""
from __future__ import annotations

import base64
import functools
import io
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from studio.control.aux import import_aux
from studio.control.preprocessors import PREPROCESSORS, annotator_dirs, run_preprocessor
from studio.request import ControlUnit, GenerationRequest, RequestError
from studio.service.container import build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.support.tiny_controlnets import save_random_controlnet


def photo(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (40, 90, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, 54, 54), fill=(220, 60, 40))
    draw.line((0, 60, 64, 20), fill=(250, 250, 250), width=3)
    return image


def _state(module: Any) -> dict[str, torch.Tensor]:
    return module.state_dict()


def lineart() -> dict:
    return _state(import_aux("controlnet_aux.lineart").Generator(3, 1, 3))


def hed() -> dict:
    return _state(import_aux("controlnet_aux.hed").ControlNetHED_Apache2())


def pidinet() -> dict:
    return {"state_dict": _state(import_aux("controlnet_aux.pidi.model").pidinet())}


def mlsd() -> dict:
    return _state(import_aux("controlnet_aux.mlsd.models.mbv2_mlsd_large").MobileV2_MLSD_Large())


def openpose() -> dict:
    model = import_aux("controlnet_aux.open_pose.model").bodypose_model()
    return {".".join(key.split(".")[1:]): value for key, value in model.state_dict().items()}


# module -> (file, builder of its random weights)
RANDOM_DETECTORS: dict[str, tuple[str, Callable[[], dict]]] = {
    "lineart_realistic": ("sk_model.pth", lineart),
    "lineart_coarse": ("sk_model2.pth", lineart),
    "softedge_hed": ("ControlNetHED.pth", hed),
    "softedge_pidinet": ("table5_pidinet.pth", pidinet),
    "mlsd": ("mlsd_large_512_fp32.pth", mlsd),
    "openpose": ("body_pose_model.pth", openpose),
}


@functools.cache
def weights_file(module: str, folder: Path) -> Path:
    name, build = RANDOM_DETECTORS[module]
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(build(), folder / name)
    return folder / name


@pytest.mark.parametrize("module", list(RANDOM_DETECTORS))
def test_detector_runs_from_random_weights_placed_under_controlnet_annotators(tmp_path, module):
    models = tmp_path / "models"
    with pytest.raises(ValueError, match=f"{module}.*unavailable.*needs {RANDOM_DETECTORS[module][0]} under "
                                         f".*ControlNet/annotators"):
        run_preprocessor(module, photo(), 0.1, 0.1, annotator_dirs(models))
    weights_file(module, models / "ControlNet" / "annotators")
    spec = PREPROCESSORS[module]
    assert spec.unavailable_reason(annotator_dirs(models)) is None
    detected = run_preprocessor(module, photo(), spec.range_a[2], spec.range_b[2], annotator_dirs(models))
    assert detected.size == (64, 64) and detected.mode == "RGB"


def test_the_old_annotators_folder_is_still_searched(tmp_path):
    weights_file("softedge_pidinet", tmp_path / "models" / "annotators")
    edges = run_preprocessor("softedge_pidinet", photo(), 0, 0, annotator_dirs(tmp_path / "models"))
    assert edges.size == (64, 64)


@pytest.mark.parametrize("module, file", [
    ("depth_midas", "dpt_hybrid-midas-501f0c75.pt"), ("normal_bae", "scannet.pt"), ("lineart_anime", "netG.pth"),
    ("depth_anything", "depth_anything_vitl14.pth"), ("seg_ofade20k", "250_16_swin_l_oneformer_ade20k_160k.pth"),
    ("seg_ufade20k", "upernet_global_small.pth"),
])
def test_every_detector_without_its_file_names_the_file(tmp_path, module, file):
    assert file in PREPROCESSORS[module].unavailable_reason(annotator_dirs(tmp_path))


def test_a_detector_whose_code_is_absent_says_so_with_or_without_its_file(tmp_path):
    folder = tmp_path / "ControlNet" / "annotators"
    before = PREPROCESSORS["inpaint_only+lama"].unavailable_reason(annotator_dirs(tmp_path))
    folder.mkdir(parents=True)
    (folder / "ControlNetLama.pth").write_bytes(b"")
    reason = PREPROCESSORS["inpaint_only+lama"].unavailable_reason(annotator_dirs(tmp_path))
    assert reason == before and "cannot run here even with its weights" in reason and "use inpaint_only" in reason


@pytest.fixture(scope="module")
def lineart_setup(engine) -> Iterator[None]:
    models = engine.models.settings.models_dir
    net = save_random_controlnet(engine.models.current().pipe.unet, models / "ControlNet" / "control_v11p_sd15_lineart",
                                 seed=5)
    weights_file("lineart_realistic", models / "ControlNet" / "annotators")
    yield
    shutil.rmtree(net)
    (models / "ControlNet" / "annotators" / "sk_model.pth").unlink()
    engine.models.current().controlnets.pop(net.name, None)


def test_a_lineart_unit_runs_its_detector_and_its_controlnet(engine, lineart_setup):
    base = GenerationRequest(prompt="a red ball", sampler_name="Euler", steps=3, seed=9, width=64, height=64)
    unit = ControlUnit(control_type="lineart", image=photo(), module="lineart_realistic")
    result = engine.run(base.replace(controlnet_units=(unit,)))
    assert result.controls.titles == ("control_v11p_sd15_lineart",)
    assert result.controls.images[0].size == (64, 64)
    plain = np.asarray(engine.run(base).images[0].image, dtype=float)
    assert np.abs(np.asarray(result.images[0].image, dtype=float) - plain).mean() > 0.5
    with pytest.raises(RequestError, match="needs ControlNetHED.pth"):
        engine.run(base.replace(controlnet_units=(ControlUnit(control_type="softedge", image=photo(),
                                                              module="softedge_hed"),)))


def test_detect_route_uses_the_placed_file(tmp_path):
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "out", extensions_dir=tmp_path / "ext",
                        cache_dir=tmp_path / "cache", styles_file=tmp_path / "styles.csv")
    app = FastAPI()
    app.include_router(build_api(build_services(settings), AccessPolicy()))
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    body = {"controlnet_module": "softedge_pidinet", "controlnet_processor_res": 128,
            "controlnet_input_images": [base64.b64encode(buffer.getvalue()).decode()]}
    with TestClient(app) as client:
        missing = client.post("/controlnet/detect", json=body)
        assert missing.status_code == 422 and "table5_pidinet.pth" in missing.json()["detail"]
        assert client.get("/controlnet/module_list").json()["module_detail"]["softedge_pidinet"]["unavailable"]
        weights_file("softedge_pidinet", settings.models_dir / "ControlNet" / "annotators")
        found = client.post("/controlnet/detect", json=body)
        assert found.status_code == 200, found.text
        assert Image.open(io.BytesIO(base64.b64decode(found.json()["images"][0]))).size == (128, 128)
        assert client.get("/controlnet/module_list").json()["module_detail"]["softedge_pidinet"]["unavailable"] is None
