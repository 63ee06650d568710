"""A1111's outpainting scripts by name: "Poor man's outpainting" and "Outpainting mk2".

Clients of A1111's API run them with `script_name` and positional `script_args`; here both map onto
the studio's own outpainting (the request's `outpaint_*` fields: the canvas is extended on the
chosen sides and the new strip inpainted, the original pixels kept), so they take the same
arguments and give one extended image. The new area starts as A1111's "fill" (blurred colours of the
surroundings; poor man's "Masked content" picks: fill, original = stretched edges, latent noise = noise),
so it is smooth, without a seam. mk2's noise quality and colour variation shape A1111's own matched
noise; here they are accepted, checked and recorded, and mk2 starts from "fill" too.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from studio.api import ExtensionApi, ExtensionContext, GenerationRequest, ScriptResult

POOR_MANS = "Poor man's outpainting"
MK2 = "Outpainting mk2"
DIRECTIONS = ("left", "right", "up", "down")
FILLS = ("fill", "original", "latent noise", "latent nothing")  # A1111's "Masked content"
MAX_PIXELS = 256  # A1111's sliders: 8 .. 256


def register(api: ExtensionApi) -> None:
    api.add_script(POOR_MANS, poor_mans_ui, run_poor_mans, api_args=poor_mans_args)
    api.add_script(MK2, mk2_ui, run_mk2, api_args=mk2_args)


def poor_mans_ui() -> dict[str, Any]:
    import gradio as gr

    return {
        "pixels": gr.Slider(8, MAX_PIXELS, value=128, step=8, label="Pixels to expand"),
        "mask_blur": gr.Slider(0, 64, value=4, step=1, label="Mask blur"),
        "inpainting_fill": gr.Radio(list(FILLS), value="fill", type="index", label="Masked content"),
        "direction": gr.CheckboxGroup(list(DIRECTIONS), value=list(DIRECTIONS), label="Outpainting direction"),
    }


def mk2_ui() -> dict[str, Any]:
    import gradio as gr

    return {
        "pixels": gr.Slider(8, MAX_PIXELS, value=128, step=8, label="Pixels to expand"),
        "mask_blur": gr.Slider(0, 64, value=8, step=1, label="Mask blur"),
        "direction": gr.CheckboxGroup(list(DIRECTIONS), value=list(DIRECTIONS), label="Outpainting direction"),
        "noise_q": gr.Slider(0.0, 4.0, value=1.0, step=0.01, label="Fall-off exponent (lower=higher detail)"),
        "color_variation": gr.Slider(0.0, 1.0, value=0.05, step=0.01, label="Color variation"),
    }


def poor_mans_args(args: Sequence[Any], request: GenerationRequest) -> Mapping[str, Any]:
    """A1111's script_args: [pixels, mask_blur, inpainting_fill, direction]."""
    names = ("pixels", "mask_blur", "inpainting_fill", "direction")
    return check({"mask_blur": 4, "inpainting_fill": 0, **_named(POOR_MANS, names, args)})


def mk2_args(args: Sequence[Any], request: GenerationRequest) -> Mapping[str, Any]:
    """A1111's script_args: [info (unused), pixels, mask_blur, direction, noise_q, color_variation]."""
    names = ("info", "pixels", "mask_blur", "direction", "noise_q", "color_variation")
    values = {"mask_blur": 8, "noise_q": 1.0, "color_variation": 0.05, **_named(MK2, names, args)}
    values.pop("info", None)
    for name, low, high in (("noise_q", 0.0, 4.0), ("color_variation", 0.0, 1.0)):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"{name} must be a number from {low:g} to {high:g} (got {value!r})")
    return check(values)


def _named(title: str, names: Sequence[str], args: Sequence[Any]) -> dict[str, Any]:
    if len(args) > len(names):
        raise ValueError(f"{title} takes at most {len(names)} script_args ({', '.join(names)})")
    return {"pixels": 128, "direction": list(DIRECTIONS), **dict(zip(names, args))}


def check(values: Mapping[str, Any]) -> dict[str, Any]:
    pixels, blur, fill = values["pixels"], values["mask_blur"], values.get("inpainting_fill", 0)
    if isinstance(pixels, bool) or not isinstance(pixels, int) or not 8 <= pixels <= MAX_PIXELS:
        raise ValueError(f"pixels must be a whole number from 8 to {MAX_PIXELS} (got {pixels!r})")
    if isinstance(blur, bool) or not isinstance(blur, int) or not 0 <= blur <= 64:
        raise ValueError(f"mask_blur must be a whole number from 0 to 64 (got {blur!r})")
    if isinstance(fill, str) and fill in FILLS:
        fill = FILLS.index(fill)
    if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill < len(FILLS):
        raise ValueError(f"inpainting_fill must be one of 0..3 ({', '.join(FILLS)}) (got {fill!r})")
    direction = values["direction"]
    if isinstance(direction, str):
        direction = [direction]
    if not isinstance(direction, (list, tuple)) or not direction or any(d not in DIRECTIONS for d in direction):
        raise ValueError(f"direction must be a list of {', '.join(DIRECTIONS)} (got {direction!r})")
    return {**values, "inpainting_fill": fill, "direction": list(dict.fromkeys(direction))}


# Masked content -> how the new area starts (studio's OUTPAINT_FILLS: 0 stretch, 1 noise, 2 fill).
START_FOR_FILL = {0: 2, 1: 0, 2: 1, 3: 2}


def outpaint(request: GenerationRequest, values: Mapping[str, Any]) -> GenerationRequest:
    if request.init_image is None:
        raise ValueError("outpainting extends an image: run it from img2img with an init image")
    pads = {f"outpaint_{side}": values["pixels"] if side in values["direction"] else 0 for side in DIRECTIONS}
    return request.replace(**pads, mask_blur=values["mask_blur"], inpainting_fill=values["inpainting_fill"],
                           outpaint_fill=START_FOR_FILL[values["inpainting_fill"]], batch_size=1, n_iter=1)


def run_poor_mans(ctx: ExtensionContext, request: GenerationRequest, values: Mapping[str, Any]) -> ScriptResult:
    return _run(ctx, outpaint(request, check(values)), POOR_MANS)


def run_mk2(ctx: ExtensionContext, request: GenerationRequest, values: Mapping[str, Any]) -> ScriptResult:
    return _run(ctx, outpaint(request, check(values)), MK2)


def _run(ctx: ExtensionContext, request: GenerationRequest, title: str) -> ScriptResult:
    job = ctx.submit(request)
    images = [(item.path or item.image, title) for item in job.images]
    note = "Interrupted." if job.interrupted else f"{title}: the canvas was extended and the new area painted."
    return ScriptResult(images, [item.infotext for item in job.images], note)
