"""Face restoration (A1111's GFPGAN / CodeFormer, and RestoreFormer) from files in models/: the RetinaFace
detector loading facexlib's weights file, the aligned crop and feathered paste, the restorers through
spandrel, Extras' visibility and the refusals naming the file to place. Models are random weights of the
real architectures (tests/support/face_models.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.checkpoints import face_files, face_paste
from studio.checkpoints.faces import FaceRestorers, load_restorer, restore_faces
from studio.checkpoints.retinaface import RetinaFace, load_state, priors
from studio.checkpoints.upscalers import Upscalers
from studio.errors import ModelError
from studio.generation.extras import process
from studio.generation.extras_request import ExtrasRequest
from studio.request import RequestError
from tests.support import face_models


def picture(size: int = 128, seed: int = 1) -> Image.Image:
    """A smooth gradient with a little noise: a restorer's output differs from it everywhere it runs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x * 255 / size, y * 255 / size, np.full_like(x, 128)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faces") / "models"
    face_models.write(root, "GFPGAN", face_files.DETECTOR_FILE, face_models.detector_state())
    face_models.write(root, "GFPGAN", "RestoreFormer.pth", face_models.restoreformer_state())
    return root


@pytest.fixture(scope="module")
def restorers(models: Path) -> FaceRestorers:
    return FaceRestorers(models, detect_size=face_models.DETECT_SIZE)


@pytest.fixture(scope="module")
def restored(restorers: FaceRestorers) -> Image.Image:
    """picture(128) with its one face restored by the small RestoreFormer (one run, shared)."""
    return restorers.restore(picture(128), "RestoreFormer")


def test_retinaface_matches_facexlibs_state_dict_and_finds_the_one_face(restorers):
    # facexlib's file (DataParallel "module." keys, half precision) loads strictly into our module.
    detector = restorers.detector()
    assert isinstance(detector, RetinaFace)
    faces = restorers.detect(picture(64))
    assert len(faces) == 1  # the real network, priors, decoding, threshold and NMS: one face
    face = faces[0]
    scale = 64 / face_models.DETECT_SIZE
    expected = np.array(face_models.LANDMARKS_32) * scale
    assert face.score > 0.97
    assert np.allclose(face.landmarks, expected, atol=0.05)
    half = face_models.BOX_32 / 2 * scale
    assert np.allclose(face.box, (32 - half, 32 - half, 32 + half, 32 + half), atol=0.05)


def test_priors_follow_facexlib_layout():
    anchors = priors(96, 64)
    assert anchors.shape == (12 * 8 * 2 + 6 * 4 * 2 + 3 * 2 * 2, 4)  # ceil(size / stride) cells, two anchors each
    assert torch.allclose(anchors[0], torch.tensor([4 / 64, 4 / 96, 16 / 64, 16 / 96]))


def test_a_detector_file_of_another_network_is_refused(tmp_path):
    bad = face_models.write(tmp_path, "GFPGAN", face_files.DETECTOR_FILE, {"conv.weight": torch.zeros(1)})
    with pytest.raises(ModelError, match="RetinaFace"):
        FaceRestorers(tmp_path).detector()
    assert bad.exists()
    with pytest.raises(RuntimeError):
        load_state(RetinaFace(), {"conv.weight": torch.zeros(1)})


def test_restore_changes_pixels_only_inside_the_face(restorers, restored):
    image, result = picture(128), restored
    face = restorers.detect(image)[0]
    before, after = np.asarray(image), np.asarray(result)
    assert after.shape == before.shape
    inside = face_paste.face_region(before.shape, face_paste.alignment(face.landmarks))
    changed = np.any(before != after, axis=-1)
    assert changed[inside].mean() > 0.5  # the restored face replaced the picture there
    assert not changed[~inside].any()  # and nowhere else
    assert 0.05 < inside.mean() < 0.6  # a face of the picture, not all of it


def test_paste_feathers_the_seam():
    landmarks = np.array(face_models.LANDMARKS_32) * 4  # a face in a 128x128 picture
    matrix = face_paste.alignment(landmarks)
    black = np.zeros((128, 128, 3), np.uint8)
    assert face_paste.crop(black, matrix).shape == (512, 512, 3)  # the restorer's aligned input
    pasted = face_paste.paste(black, np.full((512, 512, 3), 255, np.uint8), matrix)[:, :, 0]
    inside = face_paste.face_region(black.shape, matrix)
    assert pasted[64, 64] == 255 and not pasted[~inside].any()
    seam = (pasted > 0) & (pasted < 255)
    assert seam.sum() > 100  # a soft edge all around, not a hard cut


def test_restorer_files_load_as_the_named_architecture(models):
    path = face_files.restorer_file(models, "RestoreFormer")
    assert path is not None and path.name == "RestoreFormer.pth"
    descriptor = load_restorer(path, "RestoreFormer")
    assert descriptor.architecture.id == "RestoreFormer"
    with pytest.raises(ModelError, match="is a RestoreFormer model, not GFPGAN"):
        load_restorer(path, "GFPGAN")
    plain = restore_faces(picture(64), descriptor, [])  # no face found: the picture as it was
    assert np.array_equal(np.asarray(plain), np.asarray(picture(64)))


def test_missing_files_are_refused_naming_the_folder_and_file(tmp_path, models):
    assert face_files.present(tmp_path) == {}
    reason = face_files.missing_reason(tmp_path, "GFPGAN")
    assert "GFPGANv1.4.pth" in reason and str(tmp_path / "GFPGAN") in reason
    assert "codeformer-v0.1.0.pth" in face_files.missing_reason(tmp_path, "CodeFormer")
    assert str(tmp_path / "Codeformer") in face_files.missing_reason(tmp_path, "CodeFormer")
    (tmp_path / "GFPGAN").mkdir()
    (tmp_path / "GFPGAN" / "GFPGANv1.4.pth").write_bytes(b"not read by a check")
    assert face_files.DETECTOR_FILE in face_files.missing_reason(tmp_path, "GFPGAN")
    with pytest.raises(RequestError, match="restore_faces: GFPGAN needs the face detector"):
        FaceRestorers(tmp_path).check("GFPGAN", "restore_faces")
    with pytest.raises(RequestError, match="gfpgan_visibility: .*GFPGANv1.4.pth"):
        ExtrasRequest(gfpgan_visibility=0.5).validate(["None"], lambda name: face_files.missing_reason(
            tmp_path / "empty", name))
    assert face_files.missing_reason(models, "RestoreFormer") is None
    assert face_files.api_items(models) == [{"name": "RestoreFormer", "cmd_dir": str((models / "GFPGAN").resolve())}]


def test_a_file_outside_the_models_folder_is_not_found(tmp_path):
    outside = tmp_path / "elsewhere" / "GFPGANv1.4.pth"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    (tmp_path / "models" / "GFPGAN").mkdir(parents=True)
    (tmp_path / "models" / "GFPGAN" / "GFPGANv1.4.pth").symlink_to(outside)
    assert face_files.restorer_file(tmp_path / "models", "GFPGAN") is None


def test_extras_visibility_zero_leaves_the_picture_and_the_info_names_what_ran(restorers, tmp_path):
    image = picture(64)
    upscalers = Upscalers(tmp_path)
    untouched = process(image, ExtrasRequest(upscaler_1="None", upscaling_resize=1.0), upscalers, restorers)
    assert np.array_equal(np.asarray(untouched), np.asarray(image))
    request = ExtrasRequest(upscaler_1="None", upscaling_resize=1.0, gfpgan_visibility=0.5, codeformer_visibility=0.25,
                            codeformer_weight=0.7)
    assert "GFPGAN visibility: 0.5" in request.info() and "CodeFormer weight: 0.7" in request.info()


def test_blend_by_visibility(restorers, restored):
    image, full = picture(128), restored
    half = restorers.blend(image, "RestoreFormer", 0.5)
    assert restorers.blend(image, "RestoreFormer", 0.0) is image
    a, b, c = (np.asarray(x).astype(int) for x in (image, full, half))
    assert np.abs(c - (a + b) / 2).max() <= 1  # Image.blend: halfway between, as A1111's Extras


@pytest.mark.slow
def test_gfpgan_from_a1111s_file_name_restores_a_face(tmp_path):
    """The real GFPGAN architecture (random weights, spandrel detects it from the keys) in models/GFPGAN."""
    face_models.write(tmp_path, "GFPGAN", "GFPGANv1.4.pth", face_models.gfpgan_state())
    face_models.write(tmp_path, "GFPGAN", face_files.DETECTOR_FILE, face_models.detector_state())
    restorers = FaceRestorers(tmp_path, detect_size=face_models.DETECT_SIZE)
    assert face_files.api_items(tmp_path)[0]["name"] == "GFPGAN"
    image = picture(64)
    result = process(image, ExtrasRequest(upscaler_1="None", upscaling_resize=1.0, gfpgan_visibility=1.0),
                     Upscalers(tmp_path), restorers)
    changed = np.any(np.asarray(result) != np.asarray(image), axis=-1)
    assert result.size == image.size and changed.any() and not changed.all()


def test_codeformer_is_registered_from_spandrel_extra_arches():
    """CodeFormer's real network is too slow for the suite on a CPU (checked by hand: it loads from a
    `params_ema` file and its weight changes the result); here: its keys are recognised as CodeFormer."""
    from studio.checkpoints.faces import restorer_registry

    keys = ("position_emb", "idx_pred_layer.1.weight", "quantize.embedding.weight",
            "ft_layers.0.self_attn.in_proj_weight", "encoder.blocks.0.weight")
    state = {key: torch.zeros(1) for key in keys}
    registry = restorer_registry()
    assert [support.architecture.id for support in registry if support.detect(state)] == ["CodeFormer"]
    assert {support.architecture.id for support in registry} == {"GFPGAN", "RestoreFormer", "CodeFormer"}


def test_without_the_detector_file_detection_is_refused_naming_it(tmp_path):
    with pytest.raises(RequestError, match=f"place it in {tmp_path / 'GFPGAN'}") as refused:
        FaceRestorers(tmp_path).detect(picture(32))
    assert face_files.DETECTOR_FILE in str(refused.value)


def test_options_fill_the_restorer_and_infotext_round_trips(settings):
    from studio.records.infotext import params_to_request_fields, parse_infotext
    from studio.request import GenerationRequest
    from studio.service.options import OptionsService

    options = OptionsService(settings)
    options.update({"face_restoration_model": "GFPGAN", "code_former_weight": 0.2})
    job = options.job_request(GenerationRequest(prompt="a face", restore_faces=True))
    assert (job.face_restoration_model, job.code_former_weight) == ("GFPGAN", 0.2)
    named = options.job_request(GenerationRequest(restore_faces=True, face_restoration_model="CodeFormer"))
    assert named.face_restoration_model == "CodeFormer"  # the request's own choice wins
    assert options.job_request(GenerationRequest()).face_restoration_model == ""  # off: nothing filled
    fields = params_to_request_fields(parse_infotext("a face\nSteps: 2, Seed: 1, Face restoration: GFPGAN, Size: 64x64"))
    assert (fields["restore_faces"], fields["face_restoration_model"]) == (True, "GFPGAN")
    assert params_to_request_fields(parse_infotext("a face\nSteps: 2, Seed: 1, Size: 64x64"))["restore_faces"] is False
