"""ControlNet core on the embedded default model: preprocessors, modes, scales, no reloads, infotext."""
import numpy as np
import pytest
from diffusers import ControlNetModel, DiffusionPipeline
from PIL import Image, ImageDraw

from studio.control.edges import canny
from studio.control.pose import COLORS, LIMBS, pose_from_openpose_json, pose_to_openpose_json, preset, render_pose
from studio.control.preprocessors import run_preprocessor
from studio.control.units import control_image
from studio.records.infotext import params_to_request_fields, parse_infotext
from studio.records.pnginfo import read_generation_info
from studio.request import ControlUnit, GenerationRequest, RequestError
from studio.service import jobs


def square(size=64):
    image = Image.new("RGB", (size, size), (30, 40, 200))
    ImageDraw.Draw(image).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(230, 30, 30))
    return image


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.float32)


BASE = GenerationRequest(prompt="a red square on a blue background", sampler_name="Euler", steps=8, seed=21)
CANNY = ControlUnit(control_type="canny", image=square(), module="canny")


def test_canny_preprocessor_gives_binary_edges_of_the_right_size(tmp_path):
    edges = np.asarray(run_preprocessor("canny", square(96), 100, 200, tmp_path))
    assert edges.shape == (96, 96, 3)
    assert set(np.unique(edges)) == {0, 255}
    assert edges[22:27, 40:56].max() == 255 and edges[48, 48].max() == 0  # the square's top edge, not its inside


def test_scribble_extraction_is_a_thick_white_outline(tmp_path):
    scribble = np.asarray(run_preprocessor("scribble_xdog", square(), 0, 0, tmp_path))[:, :, 0]
    assert scribble[16, 20:44].min() == 255 and scribble[32, 32] == 0
    assert (scribble[14:19, 30] == 255).sum() >= 3  # thicker than one pixel


def test_detectors_without_weights_are_unavailable_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="openpose.*unavailable.*models/annotators|annotators"):
        run_preprocessor("openpose", square(), 0, 0, tmp_path / "annotators")


def test_pose_renderer_draws_limbs_in_openpose_colours_at_the_keypoints():
    keypoints = preset("standing", 256, 256)
    image = np.asarray(render_pose(keypoints, 256, 256)).astype(int)
    for limb, color in zip(LIMBS[:12], COLORS):
        (x1, y1), (x2, y2) = keypoints[limb[0]], keypoints[limb[1]]
        middle = image[int((y1 + y2) / 2), int((x1 + x2) / 2)]
        assert np.abs(middle - np.array(color) * 0.6).max() <= 60, (limb, middle, color)  # OpenPose draws limbs at 60%
    assert image[5, 5].sum() == 0  # black background


def test_pose_json_round_trip():
    keypoints = preset("walking", 64, 64)
    keypoints[3] = None
    restored, width, height = pose_from_openpose_json(pose_to_openpose_json(keypoints, 64, 64))
    assert (width, height) == (64, 64) and restored[3] is None
    assert np.allclose([p for p in restored if p], [p for p in keypoints if p])


def test_control_image_fits_the_generation_size(tmp_path):
    unit = ControlUnit(image=square(100).crop((0, 0, 100, 60)), module="canny", resize_mode=2)
    assert control_image(unit, None, 64, 80, tmp_path).size == (64, 80)


def test_weight_zero_equals_no_controlnet(engine):
    plain = engine.run(BASE).images[0].image
    zero = engine.run(BASE.replace(controlnet_units=(CANNY.__class__(**{**CANNY.__dict__, "weight": 0.0}),))).images[0].image
    assert np.array_equal(np.asarray(plain), np.asarray(zero))


def test_control_changes_the_image_and_early_end_stays_closer_to_uncontrolled(engine):
    plain = pixels(engine.run(BASE).images[0].image)
    full = pixels(engine.run(BASE.replace(controlnet_units=(CANNY,))).images[0].image)
    early = ControlUnit(**{**CANNY.__dict__, "guidance_end": 0.3})
    short = pixels(engine.run(BASE.replace(controlnet_units=(early,))).images[0].image)
    assert np.abs(full - plain).mean() > 0.5
    assert np.abs(short - plain).mean() < np.abs(full - plain).mean()


@pytest.mark.parametrize("mode", [1, 2])
def test_control_modes_differ_from_balanced(engine, mode):
    balanced = pixels(engine.run(BASE.replace(controlnet_units=(CANNY,))).images[0].image)
    other = ControlUnit(**{**CANNY.__dict__, "control_mode": mode})
    assert np.abs(pixels(engine.run(BASE.replace(controlnet_units=(other,))).images[0].image) - balanced).mean() > 0.1


def test_units_attach_without_reloading_the_base_and_switching_loads_only_the_controlnet(engine, monkeypatch):
    model = engine.models.current()
    pointer = model.pipe.unet.conv_in.weight.data_ptr()
    loads = []
    original = ControlNetModel.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return original(cls, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("the base model must not reload")

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(ControlNetModel, "from_pretrained", classmethod(counting))
    model.controlnets.clear()
    engine.run(BASE.replace(steps=2, controlnet_units=(CANNY,)))
    scribble = ControlUnit(control_type="scribble", image=square(), module="scribble_xdog")
    engine.run(BASE.replace(steps=2, controlnet_units=(CANNY, scribble)))
    engine.run(BASE.replace(steps=2))
    engine.run(BASE.replace(steps=2, controlnet_units=(scribble,)))
    assert [str(path).rsplit("/", 1)[-1] for path in loads] == ["controlnet-canny", "controlnet-scribble"]
    assert engine.models.current() is model
    for pipe in model.mode_pipelines.values():
        assert pipe.unet.conv_in.weight.data_ptr() == pointer


def test_three_units_in_every_mode(engine):
    pose = ControlUnit(control_type="pose", image=render_pose(preset("arms up", 64, 64), 64, 64))
    scribble = ControlUnit(control_type="scribble", module="scribble_xdog")  # no image: the source image
    mask = Image.new("L", (64, 64))
    ImageDraw.Draw(mask).rectangle((10, 10, 30, 30), fill=255)
    for request in (BASE.replace(controlnet_units=(CANNY, pose, CANNY)),
                    BASE.replace(init_image=square(), controlnet_units=(CANNY, pose, scribble)),
                    BASE.replace(init_image=square(), mask=mask, controlnet_units=(scribble,))):
        result = engine.run(request.replace(steps=2))
        assert result.images[0].image.size == (64, 64)
        assert len(result.controls.images) == len(request.controlnet_units)


def test_missing_image_in_txt2img_is_a_clear_error(engine):
    with pytest.raises(RequestError, match="ControlNet unit 0: give a control image"):
        engine.run(BASE.replace(controlnet_units=(ControlUnit(),)))


def test_infotext_records_units_and_control_images_are_saved(engine, settings):
    unit = ControlUnit(control_type="canny", image=square(), module="canny", weight=0.7, guidance_start=0.1,
                       guidance_end=0.8, control_mode=1, resize_mode=0, threshold_a=50, threshold_b=150)
    result = jobs.generate(BASE.replace(steps=2, controlnet_units=(unit,)), engine, settings)
    path = result.images[0].path
    control = Image.open(path.with_name(f"{path.stem}-control-0.png"))
    assert np.array_equal(np.asarray(control.convert("RGB")), np.asarray(canny(square(), 50, 150)))
    params = parse_infotext(read_generation_info(path)["infotext"])
    assert "Module: canny" in params["ControlNet 0"] and "Model: controlnet-canny" in params["ControlNet 0"]
    restored = params_to_request_fields(params)["controlnet_units"][0]
    expected = {k: v for k, v in unit.__dict__.items() if k not in ("image", "mask", "enabled")}
    assert restored == {**expected, "model": "controlnet-canny"}


def test_openpose_runs_offline_once_its_weights_are_under_annotators(tmp_path):
    import torch
    from controlnet_aux.open_pose.model import bodypose_model

    torch.manual_seed(0)
    model = bodypose_model()
    # The published file's keys lack the first module prefix (controlnet_aux's util.transfer adds it).
    weights = {".".join(key.split(".")[1:]): value for key, value in model.state_dict().items()}
    torch.save(weights, tmp_path / "body_pose_model.pth")
    photo = square(64)
    pose = run_preprocessor("openpose", photo, 0, 0, tmp_path)
    assert pose.size == photo.size and pose.mode == "RGB"
