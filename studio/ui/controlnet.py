"""The ControlNet panel of the txt2img, img2img and inpaint tabs: `control_net_unit_count` units (3), laid out and
named as in sd-webui-controlnet (Enable, Control Type, control image, Preprocessor + preview, Model,
Control Weight, Starting/Ending Control Step, Control Mode, Resize Mode, Pixel Perfect).

Each unit's image comes from an upload (or the tab's source image), a scribble canvas, or the pose
editor. Widget values map to `ControlUnit` fields by name; the panel's `derive` gives the request
its `controlnet_units`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Mapping

import gradio as gr
from PIL import Image

from studio.generation import modes
from studio.images import decode_image
from studio.request import CONTROL_MODES, CONTROL_RESIZE_MODES, ControlUnit, RequestError
from studio.ui.control_values import (
    AUTO_MODEL,
    BLACK_ON_WHITE,
    DEFAULTS,
    DRAW,
    POSE,
    SKETCH_SIZE,
    THRESHOLD_RANGE,
    UPLOAD,
    WHITE_ON_BLACK,
    control_types,
    default_input,
    default_module,
    model_choices,
    module_choices,
    sketch_background,
    unit_from_values,
)
from studio.ui.errors import user_errors
from studio.ui.forms import RequestForm, widget_value
from studio.ui.images import image_input
from studio.ui.pose_editor import (
    DEFAULT_PRESET,
    PoseEditor,
    build_pose_canvas,
    build_pose_keypoints,
    preset_text,
    read_asset,
    wire_pose_editor,
)

if TYPE_CHECKING:
    from studio.service.control import ControlService

@dataclass
class UnitWidgets:
    fields: dict[str, gr.components.Component]  # ControlUnit field -> widget
    sources: dict[str, gr.components.Component]  # the image's source widgets, preprocessor switch, module, model
    preview: gr.Image
    preview_button: gr.Button
    pose: PoseEditor | None
    groups: dict[str, list[gr.Column]] = field(default_factory=dict)  # image source -> its widgets

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [*self.fields.values(), *self.sources.values()]

    def values(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        """This unit's values by name, from an event's values by component."""
        return {name: values.get(widget) for name, widget in {**self.fields, **self.sources}.items()}


@dataclass
class ControlNetPanel:
    units: list[UnitWidgets]
    tools: ModuleType | None
    width: gr.components.Component
    height: gr.components.Component
    preprocessors: Mapping[str, tuple[Any, str | None]] = field(default_factory=dict)
    models: Callable[[], list[tuple[str, str]]] = lambda: []  # (title, control type) of the ControlNets
    has_source: bool = False  # img2img/inpaint: a unit may use the tab's source image

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [widget for unit in self.units for widget in unit.inputs]

    def derive(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        """The request's `controlnet_units`: the enabled units, in order."""
        width, height = int(values[self.width]), int(values[self.height])
        units = []
        for unit in self.units:
            named = unit.values(values)
            if named.get("enabled"):
                units.append(unit_from_values(named, width, height, self.tools))
        return {"controlnet_units": tuple(units)} if units else {}

    @property
    def fill_outputs(self) -> list[Any]:
        """Every component `fill` may update."""
        return [*self.inputs, *(column for unit in self.units for group in unit.groups.values() for column in group)]

    def fill(self, units: list[Mapping[str, Any]] | tuple | None) -> dict[Any, Any]:
        """Widget updates restoring saved units (ControlUnit fields by name, e.g. a PNG's recipe or
        infotext): unit i gets units[i], enabled; the units beyond them are disabled."""
        units = list(units or ())
        updates: dict[Any, Any] = {}
        for index, unit in enumerate(self.units):
            if index < len(units):
                saved = units[index]
                saved = saved.to_dict() if isinstance(saved, ControlUnit) else dict(saved)
                updates.update(self._fill_unit(unit, saved))
            else:
                updates[unit.fields["enabled"]] = False
        return updates

    def _fill_unit(self, unit: UnitWidgets, saved: dict[str, Any]) -> dict[Any, Any]:
        f, s = unit.fields, unit.sources
        values = {**{k: v for k, v in DEFAULTS.to_dict(images=False).items() if k != "image"},
                  **{k: v for k, v in saved.items() if v is not None or k == "image"}}
        control_type = str(values["control_type"])
        updates: dict[Any, Any] = {widget: widget_value(widget, values[name])
                                   for name, widget in f.items() if name in values}
        updates[f["enabled"]] = True
        image = values.get("image")
        if isinstance(image, str):
            image = decode_image(image, "ControlNet image")
        source = UPLOAD if image is not None else default_input(control_type, self.tools is not None)
        updates[s["input"]] = source
        for key, group in unit.groups.items():
            for column in group:
                updates[column] = gr.Column(visible=key == source)
        if image is not None:
            updates[s["upload"]] = image
        # A saved unit without an image used the tab's source image (img2img/inpaint).
        updates[s["use_source"]] = self.has_source and image is None and "image" in saved
        module = str(values.get("module") or "none")
        names = [name for _, name in module_choices(self.preprocessors, control_type)]
        shown = module if module in names else default_module(self.preprocessors, control_type, source, WHITE_ON_BLACK)[1]
        updates[s["preprocess"]] = module != "none"
        updates[s["module"]] = gr.Dropdown(choices=module_choices(self.preprocessors, control_type), value=shown)
        models = model_choices(self.models(), control_type)
        model = values.get("model") or AUTO_MODEL
        updates[s["model"]] = gr.Dropdown(choices=models, value=model if model in models else AUTO_MODEL)
        spec = self.preprocessors[shown][0] if shown in self.preprocessors else None
        for name in ("threshold_a", "threshold_b"):
            updates[f[name]] = gr.Slider(value=float(values[name]), **_threshold(spec, name))
        return updates


def build_controlnet_panel(control: "ControlService", size: int, tab: str, width: gr.components.Component,
                           height: gr.components.Component, source: Any = None, count: int | None = None) -> ControlNetPanel:
    """The "ControlNet" accordion. `source` is the tab's ModeSource (img2img/inpaint) or None (txt2img):
    with one, a unit may use the source image; `size`: the model's default size; `count`: the units
    (the options store's control_net_unit_count at start; None: the flag's)."""
    tools = control.pose_tools()
    preprocessors = control.preprocessor_choices()
    with gr.Accordion("ControlNet", open=False, elem_id=f"{tab}_controlnet", elem_classes="controlnet"):
        gr.HTML("", head=f"<style>{read_asset('controlnet.css')}</style>", js_on_load=None, visible="hidden")
        with gr.Tabs(elem_id=f"{tab}_controlnet_units"):
            units = []
            for index in range(count or control.settings.control_net_unit_count):
                with gr.Tab(f"Unit {index}", elem_id=f"{tab}_cn{index}_tab"):
                    units.append(_build_unit(control, f"{tab}_cn{index}", preprocessors, tools, source is not None, size))
    panel = ControlNetPanel(units, tools, width, height, preprocessors, control.models_and_types, source is not None)
    for unit in units:
        _wire_unit(control, unit, preprocessors, tools, width, height, source)
    return panel


def _build_unit(control: "ControlService", prefix: str, preprocessors: Mapping[str, tuple[Any, str | None]],
                tools: ModuleType | None, has_source: bool, size: int) -> UnitWidgets:
    control_type = DEFAULTS.control_type
    source = default_input(control_type, tools is not None)
    preprocess, module = default_module(preprocessors, control_type, source, WHITE_ON_BLACK)
    spec = preprocessors[module][0] if module in preprocessors else None
    with gr.Row():
        enabled = gr.Checkbox(label="Enable", value=False, elem_id=f"{prefix}_enabled", min_width=80)
        pixel_perfect = gr.Checkbox(label="Pixel Perfect", value=DEFAULTS.pixel_perfect,
                                    elem_id=f"{prefix}_pixel_perfect", min_width=120)
        use_source = gr.Checkbox(label="Use the source image", value=False, visible=has_source,
                                 elem_id=f"{prefix}_use_source", min_width=160,
                                 info="instead of an uploaded image")
    kind = gr.Radio(control_types(preprocessors), value=control_type, label="Control Type", elem_id=f"{prefix}_type")
    source_radio = gr.Radio([UPLOAD, DRAW, *([POSE] if tools else [])], value=source, label="Control image",
                            elem_id=f"{prefix}_input")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Column(visible=source == UPLOAD) as upload_group:
                upload = image_input(label="Control image", type="pil", image_mode="RGB", sources=["upload", "clipboard"],
                                  format="png", height=260, elem_id=f"{prefix}_image")
            with gr.Column(visible=source == DRAW) as draw_group:
                canvas = gr.Radio([WHITE_ON_BLACK, BLACK_ON_WHITE], value=WHITE_ON_BLACK, label="Canvas",
                                  elem_id=f"{prefix}_canvas")
                sketch = gr.Sketchpad(_sketch_value(WHITE_ON_BLACK), type="pil", image_mode="RGBA", format="png",
                                      canvas_size=(SKETCH_SIZE, SKETCH_SIZE), fixed_canvas=True, layers=False,
                                      brush=_brush(WHITE_ON_BLACK), label="Scribble", height=320,
                                      elem_id=f"{prefix}_sketch")
            with gr.Column(visible=source == POSE) as pose_group:
                pose_text = preset_text(tools, DEFAULT_PRESET, size, size) if tools else ""
                pose_controls = build_pose_canvas(tools, prefix, pose_text) if tools else None
        with gr.Column(scale=2, min_width=160):
            preview = gr.Image(label="Preprocessor preview", type="pil", format="png", interactive=False, height=260,
                               elem_id=f"{prefix}_preview", elem_classes="controlnet-preview")
            preview_button = gr.Button("Preview", size="sm", elem_id=f"{prefix}_preview_button")
    with gr.Column(visible=source == POSE) as pose_details:
        pose = build_pose_keypoints(tools, prefix, pose_controls, pose_text) if tools else None
    with gr.Row(equal_height=True):
        preprocess = gr.Checkbox(label="Preprocessor", value=preprocess, elem_id=f"{prefix}_preprocess", scale=0,
                                 min_width=130)
        module_dropdown = gr.Dropdown(module_choices(preprocessors, control_type), value=module,
                                      label="Preprocessor module", elem_id=f"{prefix}_module", scale=2)
        model = gr.Dropdown(model_choices(control.models_and_types(), control_type), value=AUTO_MODEL, label="Model",
                            elem_id=f"{prefix}_model", scale=2)
    with gr.Row():
        threshold_a = gr.Slider(elem_id=f"{prefix}_threshold_a", **_threshold(spec, "threshold_a", True))
        threshold_b = gr.Slider(elem_id=f"{prefix}_threshold_b", **_threshold(spec, "threshold_b", True))
    weight = gr.Slider(0, 2, value=DEFAULTS.weight, step=0.05, label="Control Weight", elem_id=f"{prefix}_weight")
    with gr.Row():
        start = gr.Slider(0, 1, value=DEFAULTS.guidance_start, step=0.01, label="Starting Control Step",
                          elem_id=f"{prefix}_guidance_start")
        end = gr.Slider(0, 1, value=DEFAULTS.guidance_end, step=0.01, label="Ending Control Step",
                        elem_id=f"{prefix}_guidance_end")
    control_mode = gr.Radio(list(CONTROL_MODES), value=CONTROL_MODES[DEFAULTS.control_mode], type="index",
                            label="Control Mode", elem_id=f"{prefix}_control_mode")
    resize_mode = gr.Radio(list(CONTROL_RESIZE_MODES), value=CONTROL_RESIZE_MODES[DEFAULTS.resize_mode], type="index",
                           label="Resize Mode", elem_id=f"{prefix}_resize_mode")
    fields = {"enabled": enabled, "control_type": kind, "threshold_a": threshold_a, "threshold_b": threshold_b,
              "weight": weight, "guidance_start": start, "guidance_end": end, "control_mode": control_mode,
              "resize_mode": resize_mode, "pixel_perfect": pixel_perfect}
    sources = {"input": source_radio, "upload": upload, "use_source": use_source, "canvas": canvas, "sketch": sketch,
               "preprocess": preprocess, "module": module_dropdown, "model": model}
    if pose is not None:
        sources["pose"] = pose.pose
    return UnitWidgets(fields, sources, preview, preview_button, pose,
                       {UPLOAD: [upload_group], DRAW: [draw_group], POSE: [pose_group, pose_details]})


def _wire_unit(control: "ControlService", unit: UnitWidgets, preprocessors: Mapping[str, tuple[Any, str | None]],
               tools: ModuleType | None, width: Any, height: Any, mode_source: Any) -> None:
    f, s = unit.fields, unit.sources
    columns = [(key, column) for key, group in unit.groups.items() for column in group]
    layout_outputs = [s["input"], *(column for _, column in columns), s["preprocess"], s["module"], s["model"],
                      f["threshold_a"], f["threshold_b"]]

    def layout(control_type: str, source: str, canvas: str) -> list[Any]:
        """Everything that follows from the type, the image source and the canvas colours."""
        preprocess, module = default_module(preprocessors, control_type, source, canvas)
        spec = preprocessors[module][0] if module in preprocessors else None
        return [source, *(gr.Column(visible=key == source) for key, _ in columns), preprocess,
                gr.Dropdown(choices=module_choices(preprocessors, control_type), value=module),
                gr.Dropdown(choices=model_choices(control.models_and_types(), control_type), value=AUTO_MODEL),
                gr.Slider(**_threshold(spec, "threshold_a", True)), gr.Slider(**_threshold(spec, "threshold_b", True))]

    f["control_type"].input(lambda t, c: layout(t, default_input(t, tools is not None), c),
                            inputs=[f["control_type"], s["canvas"]], outputs=layout_outputs, queue=False)
    s["input"].input(layout, inputs=[f["control_type"], s["input"], s["canvas"]], outputs=layout_outputs, queue=False)

    def recolor(control_type: str, source: str, canvas: str) -> list[Any]:
        """A fresh canvas in the chosen colours (and the `invert` preprocessor for black on white)."""
        return [*layout(control_type, source, canvas), gr.Sketchpad(_sketch_value(canvas), brush=_brush(canvas))]

    s["canvas"].input(recolor, inputs=[f["control_type"], s["input"], s["canvas"]],
                      outputs=[*layout_outputs, s["sketch"]], queue=False)

    def module_changed(module: str) -> list[Any]:
        spec = preprocessors[module][0] if module in preprocessors else None
        return [gr.Slider(**_threshold(spec, "threshold_a", True)), gr.Slider(**_threshold(spec, "threshold_b", True))]

    s["module"].input(module_changed, inputs=s["module"], outputs=[f["threshold_a"], f["threshold_b"]], queue=False)
    # A preview made for another type or module would be taken for this one's: clear it (issue 25, item 13).
    for widget in (f["control_type"], s["module"]):
        widget.input(lambda: None, outputs=unit.preview, queue=False)
    s["model"].focus(lambda t: gr.Dropdown(choices=model_choices(control.models_and_types(), t)),
                     inputs=f["control_type"], outputs=s["model"], queue=False)

    source_inputs = [*mode_source.widgets.values(), *mode_source.extra_inputs] if mode_source else []

    def preview(values: dict[Any, Any]) -> Image.Image:
        with user_errors():
            w, h = int(values[width]), int(values[height])
            chosen = dataclasses.replace(unit_from_values(unit.values(values), w, h, tools), enabled=True)
            source = _mode_source(mode_source, values, w, h) if chosen.image is None else None
            if chosen.image is None and source is None:
                raise RequestError("upload a control image first" + (" (or the source image)" if mode_source else ""))
            return control.preview(chosen, source, w, h)

    unit.preview_button.click(preview, inputs={*unit.inputs, width, height, *source_inputs}, outputs=unit.preview,
                              concurrency_id="controlnet_preview", concurrency_limit=2)
    if unit.pose is not None and tools is not None:
        wire_pose_editor(unit.pose, tools, width, height)


def _mode_source(mode_source: Any, values: Mapping[Any, Any], width: int, height: int) -> Image.Image | None:
    """The tab's source image as the engine sees it: prepared at the sampling size for the mode."""
    if mode_source is None:
        return None
    request = RequestForm(mode_source.widgets).to_request(values, **mode_source.derive(values))
    if request.init_image is None:
        return None
    return modes.prepare(request.replace(width=width, height=height)).source


def _threshold(spec: Any, name: str, default: bool = False) -> dict[str, Any]:
    """The slider of threshold_a/_b for a module: its label and range (and its default value)."""
    label = getattr(spec, name, None) if spec is not None else None
    low, high, value = getattr(spec, "range_a" if name == "threshold_a" else "range_b", (*THRESHOLD_RANGE, 100))
    fields = {"label": label or name, "visible": label is not None, "minimum": low, "maximum": high,
              "step": 1 if high > 20 else 0.01}
    return {**fields, "value": value} if default else fields


def _sketch_value(canvas: str) -> dict[str, Any]:
    return {"background": sketch_background(canvas), "layers": [], "composite": None}


def _brush(canvas: str) -> gr.Brush:
    color = "#ffffff" if canvas != BLACK_ON_WHITE else "#000000"
    return gr.Brush(colors=[color], default_color=color, default_size=8, color_mode="fixed")
