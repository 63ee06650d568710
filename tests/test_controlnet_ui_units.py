"""The pure parts of the ControlNet panel and the pose editor: widget values -> ControlUnit by name,
defaults per type and image source, the pose's JSON/table/skeleton-image round trips."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.control import pose as pose_tools
from studio.control.preprocessors import PREPROCESSORS
from studio.request import ControlUnit, RequestError
from studio.ui import control_values as cv
from studio.ui import controlnet as cn
from studio.ui import pose_editor as pe

REGISTRY = {name: (spec, "needs weights" if spec.weights else None) for name, spec in PREPROCESSORS.items()}


@dataclass(frozen=True)
class FakeSpec:
    control_type: str
    threshold_a: str | None = None
    threshold_b: str | None = None


def values(**changes):
    base = {"enabled": True, "control_type": "canny", "threshold_a": 50.0, "threshold_b": 150.0, "weight": 0.8,
            "guidance_start": 0.1, "guidance_end": 0.9, "control_mode": 2, "resize_mode": 0, "pixel_perfect": True,
            "input": cv.UPLOAD, "upload": Image.new("RGB", (32, 32), "red"), "use_source": False,
            "canvas": cv.WHITE_ON_BLACK, "sketch": None, "pose": None, "preprocess": True, "module": "canny",
            "model": cv.AUTO_MODEL}
    return {**base, **changes}


def test_widget_values_map_to_unit_fields_by_name():
    unit = cv.unit_from_values(values(model="controlnet-canny"), 64, 64)
    assert unit == ControlUnit(enabled=True, control_type="canny", image=unit.image, module="canny", threshold_a=50.0,
                               threshold_b=150.0, model="controlnet-canny", weight=0.8, guidance_start=0.1,
                               guidance_end=0.9, control_mode=2, resize_mode=0, pixel_perfect=True)
    assert unit.image.size == (32, 32)
    assert cv.unit_from_values(values(), 64, 64).model is None  # "Automatic"
    assert cv.unit_from_values(values(preprocess=False), 64, 64).module == "none"
    assert cv.unit_from_values(values(use_source=True), 64, 64).image is None  # the engine uses the source


def test_every_unit_field_has_a_widget_or_a_derived_value():
    # "mask": in the UI inpaint_only takes the inpaint tab's mask (the engine passes it), no widget of its own.
    covered = set(cv.FIELD_TYPES) | {"image", "module", "model", "mask"}
    assert covered == {f for f in ControlUnit.__dataclass_fields__}


def test_control_types_and_modules_come_from_the_registry():
    registry = {**REGISTRY, "fake": (FakeSpec("fake-type"), None)}
    types = cv.control_types(registry)
    assert types[:3] == ["canny", "scribble", "pose"] and types[3:] == sorted(types[3:])
    assert set(types) == {spec.control_type for spec, _ in registry.values()} - {"any"}
    assert {"fake-type", "tile", "inpaint", "shuffle", "reference", "depth", "ip-adapter"} <= set(types)
    for control_type in ("canny", "scribble", "pose"):
        names = [name for _, name in cv.module_choices(REGISTRY, control_type)]
        assert names == [n for n, spec in PREPROCESSORS.items() if spec.control_type == control_type]
    labels = dict((name, label) for label, name in cv.module_choices(REGISTRY, "pose"))
    assert labels["openpose"] == "openpose (unavailable: needs weights)"


def test_defaults_follow_the_type_and_the_image_source():
    assert cv.default_input("canny", True) == cv.UPLOAD
    assert cv.default_input("scribble", True) == cv.DRAW
    assert (cv.default_input("pose", True), cv.default_input("pose", False)) == (cv.POSE, cv.UPLOAD)
    assert cv.default_module(REGISTRY, "canny", cv.UPLOAD, cv.WHITE_ON_BLACK) == (True, "canny")
    assert cv.default_module(REGISTRY, "scribble", cv.UPLOAD, cv.WHITE_ON_BLACK) == (True, "scribble_xdog")
    assert cv.default_module(REGISTRY, "scribble", cv.DRAW, cv.WHITE_ON_BLACK) == (False, "scribble_xdog")
    assert cv.default_module(REGISTRY, "scribble", cv.DRAW, cv.BLACK_ON_WHITE) == (True, "invert")
    assert cv.default_module(REGISTRY, "pose", cv.POSE, cv.WHITE_ON_BLACK) == (False, "openpose")
    assert cv.default_module(REGISTRY, "pose", cv.UPLOAD, cv.WHITE_ON_BLACK)[0] is False  # a skeleton image


def test_model_choices_filter_by_type():
    models = [("controlnet-canny", "canny"), ("controlnet-pose", "pose"), ("my_canny_v2", "canny")]
    assert cv.model_choices(models, "canny") == [cv.AUTO_MODEL, "controlnet-canny", "my_canny_v2"]
    assert cv.model_choices(models, "scribble") == [cv.AUTO_MODEL]


def drawn(canvas: str, color: str) -> dict:
    layer = Image.new("RGBA", (cv.SKETCH_SIZE, cv.SKETCH_SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(layer).line((40, 128, 200, 128), fill=color, width=8)
    composite = cv.sketch_background(canvas).convert("RGBA")
    composite.alpha_composite(layer)
    return {"background": cv.sketch_background(canvas), "layers": [layer], "composite": composite}


def test_a_drawn_scribble_is_the_unit_image():
    unit = cv.unit_from_values(values(control_type="scribble", input=cv.DRAW, preprocess=False,
                                      sketch=drawn(cv.WHITE_ON_BLACK, "white")), 64, 64)
    pixels = np.asarray(unit.image.convert("L"))
    assert unit.module == "none" and pixels[128, 100] == 255 and pixels[20, 20] == 0
    inverted = cv.unit_from_values(values(control_type="scribble", input=cv.DRAW, canvas=cv.BLACK_ON_WHITE,
                                          module="invert", sketch=drawn(cv.BLACK_ON_WHITE, "black")), 64, 64)
    assert inverted.module == "invert" and np.asarray(inverted.image.convert("L"))[20, 20] == 255
    with pytest.raises(RequestError, match="draw a scribble"):
        cv.unit_from_values(values(input=cv.DRAW, sketch=None), 64, 64)


def test_the_pose_unit_image_is_the_core_renderer_at_the_generation_size():
    text = pe.preset_text(pose_tools, "arms up", 64, 64)
    unit = cv.unit_from_values(values(control_type="pose", input=cv.POSE, preprocess=False, pose=text), 64, 64,
                               pose_tools)
    keypoints, _, _ = pose_tools.pose_from_openpose_json(json.loads(text))
    assert np.array_equal(np.asarray(unit.image), np.asarray(pose_tools.render_pose(keypoints, 64, 64)))
    wide = cv.unit_from_values(values(input=cv.POSE, pose=text), 128, 64, pose_tools)  # a pose from another size
    assert wide.image.size == (128, 64)


def test_pose_text_table_round_trip_and_errors():
    text = pe.preset_text(pose_tools, "walking", 64, 96)
    table = pe.pose_table(pose_tools, text)
    assert [row[0] for row in table] == list(pose_tools.KEYPOINT_NAMES)
    table[4][1:] = [10, 12]
    table[17][1:] = [None, None]  # the left ear goes missing
    keypoints, width, height = pe.read_pose(pose_tools, pe.text_from_table(pose_tools, table, text))
    assert (width, height) == (64, 96) and keypoints[4] == (10.0, 12.0) and keypoints[17] is None
    table[5][2] = ""
    with pytest.raises(RequestError, match="both x and y"):
        pe.text_from_table(pose_tools, table, text)
    with pytest.raises(RequestError, match="OpenPose JSON"):
        pe.read_pose(pose_tools, "{not json")


def test_resizing_the_generation_rescales_the_pose():
    text = pe.preset_text(pose_tools, "standing", 64, 64)
    keypoints, width, height = pe.read_pose(pose_tools, pe.resized_text(pose_tools, text, 128, 64))
    original, _, _ = pe.read_pose(pose_tools, text)
    assert (width, height) == (128, 64)
    assert keypoints[0] == pytest.approx((original[0][0] * 2, original[0][1]), abs=0.1)


def test_openpose_json_files_and_skeleton_images_load_into_the_editor(tmp_path):
    keypoints = pose_tools.preset("walking", 512, 512)
    path = tmp_path / "pose.json"
    path.write_text(json.dumps([pose_tools.pose_to_openpose_json(keypoints, 512, 512)]))  # a list of frames
    loaded, width, _ = pe.read_pose(pose_tools, pe.json_file_text(pose_tools, str(path), 64, 64))
    assert width == 64 and loaded[4] == pytest.approx((keypoints[4][0] / 8, keypoints[4][1] / 8), abs=0.1)

    skeleton = pose_tools.render_pose(keypoints, 512, 512)
    found = pe.keypoints_from_skeleton(pose_tools, skeleton)
    assert all(p is not None for p in found)
    assert max(abs(a - b) for p, q in zip(found, keypoints) for a, b in zip(p, q)) < 1.5
    with pytest.raises(RequestError, match="no OpenPose keypoints"):
        pe.skeleton_text(pose_tools, Image.new("RGB", (64, 64)), 64, 64)


def build_panel(settings):
    """A txt2img-style ControlNet panel over the real control service (the default model's three
    ControlNets; nothing is loaded)."""
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.service.control import ControlService
    from studio.service.models import ModelService

    control = ControlService(settings, ModelService(settings, Engine(ModelManager(settings))), dict(PREPROCESSORS))
    with gr.Blocks():
        width, height = gr.Slider(64, 128, value=64), gr.Slider(64, 128, value=64)
        panel = cn.build_controlnet_panel(control, 64, "t", width, height)
    return width, height, panel


def test_the_panel_feeds_enabled_units_into_the_request(settings):
    width, height, panel = build_panel(settings)
    assert len(panel.units) == 3
    event = {width: 64, height: 64}
    for unit in panel.units:
        event.update({widget: widget.value for widget in unit.inputs})
    assert panel.derive(event) == {}  # nothing enabled: the request is left alone
    second = panel.units[1]
    named = {**values(), "pose": second.sources["pose"].value}
    event.update({second.fields[k]: named[k] for k in second.fields})
    event.update({second.sources[k]: named[k] for k in second.sources})
    (unit,) = panel.derive(event)["controlnet_units"]
    assert (unit.control_type, unit.module, unit.weight, unit.control_mode) == ("canny", "canny", 0.8, 2)


def test_the_ui_layer_does_not_import_torch():
    code = "import sys, studio.ui.build; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr[-2000:]


def test_fill_restores_saved_units_by_name_and_disables_the_rest(settings):
    width, height, panel = build_panel(settings)
    image = Image.new("RGB", (32, 32), "red")
    saved = ControlUnit(control_type="canny", image=image, module="canny", threshold_a=60.0, threshold_b=170.0,
                        model="controlnet-canny", weight=0.65, guidance_start=0.2, guidance_end=0.8, control_mode=2,
                        resize_mode=0, pixel_perfect=True).to_dict()  # as in a PNG's recipe: image as a data URL
    a1111 = {"module": "none", "control_type": "scribble", "weight": 1.5, "control_mode": 1}  # infotext: no image
    updates = panel.fill([saved, a1111])
    assert set(updates) <= set(panel.fill_outputs)
    first, second, third = panel.units
    f, s = first.fields, first.sources
    assert updates[f["enabled"]] is True and updates[f["pixel_perfect"]] is True
    assert (updates[f["weight"]], updates[f["guidance_start"]], updates[f["guidance_end"]]) == (0.65, 0.2, 0.8)
    assert updates[f["control_type"]] == "canny"
    assert updates[f["control_mode"]] == "ControlNet is more important"  # index -> the radio's label
    assert updates[f["resize_mode"]] == "Just Resize"
    assert updates[f["threshold_a"]].value == 60.0 and updates[f["threshold_b"]].value == 170.0
    assert updates[s["input"]] == cv.UPLOAD and updates[s["use_source"]] is False
    assert np.array_equal(np.asarray(updates[s["upload"]]), np.asarray(image))
    assert updates[s["preprocess"]] is True and updates[s["module"]].value == "canny"
    assert updates[s["model"]].value == "controlnet-canny"
    assert [updates[c].visible for c in first.groups[cv.UPLOAD]] == [True]
    assert all(updates[c].visible is False for c in first.groups[cv.DRAW])

    f2, s2 = second.fields, second.sources
    assert updates[f2["enabled"]] is True and updates[f2["control_type"]] == "scribble"
    assert updates[f2["weight"]] == 1.5 and updates[f2["control_mode"]] == "My prompt is more important"
    assert updates[f2["guidance_end"]] == 1.0  # not in the infotext: the default
    assert updates[s2["preprocess"]] is False and updates[s2["model"]].value == cv.AUTO_MODEL
    assert updates[s2["input"]] == cv.DRAW and s2["upload"] not in updates  # no image to restore
    assert updates[third.fields["enabled"]] is False and third.fields["weight"] not in updates

    # The restored values map back to the same unit.
    event = {width: 64, height: 64}
    for unit in panel.units:
        event.update({widget: widget.value for widget in unit.inputs})
    for widget, value in updates.items():
        if widget in event:
            event[widget] = value if isinstance(value, Image.Image) else getattr(value, "value", value)
            if getattr(widget, "type", None) == "index":  # what an index radio hands back
                event[widget] = [label for label, _ in widget.choices].index(event[widget])
    (unit, _) = panel.derive({**event, second.fields["enabled"]: True, s2["input"]: cv.UPLOAD,
                              s2["upload"]: image})["controlnet_units"]
    assert unit == ControlUnit.from_dict(saved)
    assert panel.fill([])[f["enabled"]] is False
