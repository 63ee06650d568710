"""The pose editor of a ControlNet unit: an 18-keypoint OpenPose skeleton to drag in the browser
(SVG in a gr.HTML whose js_on_load is assets/pose_editor.js), a keypoint table, presets, and OpenPose
JSON or skeleton image uploads. The pose lives in one textbox as standard OpenPose JSON at the generation size; the
unit's image is the core's `render_pose` of it — the renderer the pose ControlNet was trained on.

The OpenPose tools (`studio.control.pose`) come from the control service (`pose_tools()`), so this
module never imports them itself (they import controlnet_aux)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, Sequence

import gradio as gr
import numpy as np
from PIL import Image

from studio.request import RequestError

ASSETS = Path(__file__).with_name("assets")
DEFAULT_PRESET = "standing"
TABLE_HEADERS = ["keypoint", "x", "y"]
SKELETON_TOLERANCE = 40  # max RGB distance from a keypoint's colour in an uploaded skeleton image
SKELETON_MIN_PIXELS = 3

Point = tuple[float, float] | None


# -- the pose as text, table and image (pure: tested in tests/test_controlnet_ui_units.py) -----------

def pose_text(tools: ModuleType, keypoints: Sequence[Point], width: int, height: int) -> str:
    rounded = [None if p is None else (round(float(p[0]), 1), round(float(p[1]), 1)) for p in keypoints]
    return json.dumps(tools.pose_to_openpose_json(rounded, int(width), int(height)))


def read_pose(tools: ModuleType, text: str | None) -> tuple[list[Point], int, int]:
    """(keypoints, canvas width, canvas height) from OpenPose JSON text; RequestError when it is not."""
    try:
        return tools.pose_from_openpose_json(json.loads(text or ""))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise RequestError(f"the pose is not valid OpenPose JSON: {error}") from error


def scale_pose(keypoints: Sequence[Point], size: tuple[int, int], target: tuple[int, int]) -> list[Point]:
    sx, sy = target[0] / size[0], target[1] / size[1]
    return [None if p is None else (p[0] * sx, p[1] * sy) for p in keypoints]


def preset_text(tools: ModuleType, name: str, width: int, height: int) -> str:
    if name not in tools.PRESETS:
        raise RequestError(f"unknown pose preset {name!r}; choose one of: {', '.join(tools.PRESETS)}")
    return pose_text(tools, [(x * width, y * height) for x, y in tools.PRESETS[name]], width, height)


def resized_text(tools: ModuleType, text: str, width: int, height: int) -> str:
    """The pose rescaled to a new canvas (the generation size changed)."""
    keypoints, w, h = read_pose(tools, text)
    if (w, h) == (width, height):
        return text
    return pose_text(tools, scale_pose(keypoints, (w, h), (width, height)), width, height)


def render(tools: ModuleType, text: str, width: int, height: int) -> Image.Image:
    """The unit's control image: the pose drawn by the core renderer at the generation size."""
    keypoints, w, h = read_pose(tools, text)
    return tools.render_pose(scale_pose(keypoints, (w, h), (width, height)), int(width), int(height))


def pose_table(tools: ModuleType, text: str) -> list[list[Any]]:
    keypoints, _, _ = read_pose(tools, text)
    return [[name, None, None] if p is None else [name, round(p[0], 1), round(p[1], 1)]
            for name, p in zip(tools.KEYPOINT_NAMES, keypoints)]


def text_from_table(tools: ModuleType, rows: Any, text: str) -> str:
    """The table's x/y back into the pose (an empty x or y = the keypoint is missing)."""
    _, width, height = read_pose(tools, text)
    rows = rows.values.tolist() if hasattr(rows, "values") else list(rows or [])
    if len(rows) != len(tools.KEYPOINT_NAMES):
        raise RequestError(f"the keypoint table needs {len(tools.KEYPOINT_NAMES)} rows, got {len(rows)}")
    keypoints: list[Point] = []
    for name, row in zip(tools.KEYPOINT_NAMES, rows):
        x, y = _number(row[1]), _number(row[2])
        if (x is None) != (y is None):
            raise RequestError(f"keypoint {name}: give both x and y, or neither")
        keypoints.append(None if x is None else (x, y))
    return pose_text(tools, keypoints, width, height)


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"keypoint coordinates must be numbers (got {value!r})")
    return None if np.isnan(number) else number


def keypoints_from_skeleton(tools: ModuleType, image: Image.Image) -> list[Point]:
    """Read the keypoints back from an OpenPose skeleton image: each keypoint is a dot in its own
    full-strength colour (limbs are drawn at 60 %), so the centre of that colour's pixels is the point."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    keypoints: list[Point] = []
    for color in tools.COLORS:
        distance = np.abs(pixels - np.asarray(color, dtype=np.int32)).sum(axis=-1)
        ys, xs = np.nonzero(distance <= SKELETON_TOLERANCE)
        keypoints.append((float(xs.mean()) + 0.5, float(ys.mean()) + 0.5) if len(xs) >= SKELETON_MIN_PIXELS else None)
    return keypoints


def skeleton_text(tools: ModuleType, image: Image.Image, width: int, height: int) -> str:
    keypoints = keypoints_from_skeleton(tools, image)
    if sum(p is not None for p in keypoints) < 2:
        raise RequestError("no OpenPose keypoints found in this image (expected a skeleton in OpenPose colours)")
    return pose_text(tools, scale_pose(keypoints, image.size, (width, height)), width, height)


def json_file_text(tools: ModuleType, path: str, width: int, height: int) -> str:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise RequestError(f"cannot read the OpenPose JSON: {error}") from error
    if isinstance(data, list) and data:  # some editors save a list of frames/images
        data = data[0]
    return resized_text(tools, json.dumps(data), width, height)


# -- the Gradio part ---------------------------------------------------------------------------------

class PoseControls(NamedTuple):
    canvas: gr.HTML  # the draggable skeleton
    preset: gr.Dropdown
    json_file: gr.UploadButton
    skeleton: gr.UploadButton


@dataclass
class PoseEditor:
    pose: gr.Textbox  # the pose as OpenPose JSON: what generation reads
    table: gr.Dataframe
    canvas: gr.HTML
    preset: gr.Dropdown
    json_file: gr.UploadButton
    skeleton: gr.UploadButton

    def views(self, tools: ModuleType, text: str) -> tuple[str, str, list[list[Any]]]:
        """New values for (pose, canvas, table)."""
        return text, text, pose_table(tools, text)


def build_pose_canvas(tools: ModuleType, prefix: str, text: str) -> PoseControls:
    """The draggable skeleton, the presets and the uploads."""
    canvas = gr.HTML(
        text, html_template=read_asset("pose_editor.html"), css_template=read_asset("pose_editor.css"),
        js_on_load=read_asset("pose_editor.js"), apply_default_css=False, elem_id=f"{prefix}_pose_canvas",
        elem_classes="pose-editor", names=list(tools.KEYPOINT_NAMES), limbs=[list(limb) for limb in tools.LIMBS],
        colors=[list(c) for c in tools.COLORS],
    )
    with gr.Row(equal_height=True):
        preset = gr.Dropdown(list(tools.PRESETS), value=DEFAULT_PRESET, label="Pose preset", min_width=120,
                             interactive=True, elem_id=f"{prefix}_pose_preset", scale=1)
        with gr.Column(min_width=120, scale=1):
            json_file = gr.UploadButton("Load OpenPose JSON", file_types=[".json"], type="filepath", size="sm",
                                        elem_id=f"{prefix}_pose_json_file")
            skeleton = gr.UploadButton("Load skeleton image", file_types=["image"], type="filepath", size="sm",
                                       elem_id=f"{prefix}_pose_skeleton")
    return PoseControls(canvas, preset, json_file, skeleton)


def build_pose_keypoints(tools: ModuleType, prefix: str, controls: PoseControls, text: str) -> PoseEditor:
    """The numeric side of the editor (built where there is room for a table); completes the editor."""
    with gr.Accordion("Keypoints", open=False, elem_id=f"{prefix}_pose_keypoints"):
        table = gr.Dataframe(pose_table(tools, text), headers=TABLE_HEADERS, datatype=["str", "number", "number"],
                             type="array", row_count=len(tools.KEYPOINT_NAMES), column_count=3, static_columns=[0],
                             interactive=True, max_height=320, elem_id=f"{prefix}_pose_table")
        pose = gr.Textbox(text, label="OpenPose JSON (pixels at the generation size)", lines=3, max_lines=6,
                          elem_id=f"{prefix}_pose_json", buttons=["copy"])
    return PoseEditor(pose, table, *controls)


def wire_pose_editor(editor: PoseEditor, tools: ModuleType, width: gr.Slider, height: gr.Slider) -> None:
    """Every way of changing the pose writes all three views; the canvas reports drags itself."""
    views = [editor.pose, editor.canvas, editor.table]

    def size(w: Any, h: Any) -> tuple[int, int]:
        return int(w), int(h)

    def guarded(fn):
        def run(*args: Any) -> Any:
            try:
                return fn(*args)
            except RequestError as error:
                raise gr.Error(str(error), print_exception=False)
        return run

    editor.canvas.input(guarded(lambda text: (text, pose_table(tools, text))), inputs=editor.canvas,
                        outputs=[editor.pose, editor.table], queue=False, show_progress="hidden")
    editor.table.input(guarded(lambda rows, text: editor.views(tools, text_from_table(tools, rows, text))),
                       inputs=[editor.table, editor.pose], outputs=views, queue=False, show_progress="hidden")
    editor.pose.input(guarded(lambda text, w, h: editor.views(tools, resized_text(tools, text, *size(w, h)))),
                      inputs=[editor.pose, width, height], outputs=views, queue=False, show_progress="hidden")
    # `select`, not `input`: Gradio's dropdown also fires `input` when it loses focus (after Esc, the next
    # click elsewhere), which would put the preset back over a drag made meanwhile (issue 18, item 6).
    def apply_preset(w: Any, h: Any, event: gr.SelectData) -> tuple[str, str, list[list[Any]]]:
        try:
            return editor.views(tools, preset_text(tools, str(event.value), *size(w, h)))
        except RequestError as error:
            raise gr.Error(str(error), print_exception=False)

    editor.preset.select(apply_preset, inputs=[width, height], outputs=views, queue=False,
                         show_progress="hidden")
    editor.json_file.upload(guarded(lambda path, w, h: editor.views(tools, json_file_text(tools, path, *size(w, h)))),
                            inputs=[editor.json_file, width, height], outputs=views, queue=False)
    editor.skeleton.upload(guarded(lambda path, w, h: editor.views(tools, skeleton_text(tools, _open_image(path),
                                                                                     *size(w, h)))),
                           inputs=[editor.skeleton, width, height], outputs=views, queue=False)
    gr.on([width.change, height.change],
          guarded(lambda text, w, h: editor.views(tools, resized_text(tools, text, *size(w, h)))),
          inputs=[editor.pose, width, height], outputs=views, queue=False, show_progress="hidden")


def _open_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise RequestError(f"cannot read the skeleton image: {error}") from error


def read_asset(name: str) -> str:
    return (ASSETS / name).read_text()
