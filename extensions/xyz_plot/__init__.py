"""X/Y/Z plot: run the tab's settings over up to three axes of values and draw a labelled grid.

Every cell goes through the studio's normal generation (hooks run, each image is saved with its
own infotext); the grid is saved under outputs/<mode>-grids/<date>/ with the first cell's infotext
plus the axes, as A1111 writes them. Cells run Z-major, then Y, then X.
"""
from __future__ import annotations

import json
import random
from typing import Any, Mapping

from studio.api import ExtensionApi, ExtensionContext, GenerationRequest, ScriptResult

from .a1111 import values_from_script_args
from .axes import AXIS_TYPES, MAX_CELLS, MAX_SEED, Axis, parse_axis
from .grid import draw_grid, side_by_side

TITLE = "X/Y/Z plot"
AXES = ("x", "y", "z")
PLACEHOLDER = "values separated by commas, e.g. 1, 2, 3 or 1-5 (+2)"


def register(api: ExtensionApi) -> None:
    api.add_script(TITLE, ui, run, api_args=values_from_script_args)


def ui() -> dict[str, Any]:
    import gradio as gr

    widgets: dict[str, Any] = {}
    for name, default in zip(AXES, ("Seed", "Nothing", "Nothing")):
        with gr.Row():
            widgets[f"{name}_type"] = gr.Dropdown(list(AXIS_TYPES), value=default, label=f"{name.upper()} type", scale=1)
            widgets[f"{name}_values"] = gr.Textbox(label=f"{name.upper()} values", placeholder=PLACEHOLDER, scale=3)
    widgets["draw_legend"] = gr.Checkbox(value=True, label="Draw legend")
    return widgets


def run(ctx: ExtensionContext, request: GenerationRequest, values: Mapping[str, Any]) -> ScriptResult:
    axes = [parse_axis(values.get(f"{name}_type"), values.get(f"{name}_values"), ctx, request, name.upper())
            for name in AXES]
    return plot(ctx, request, axes, legend=bool(values.get("draw_legend", True)))


def plot(ctx: ExtensionContext, request: GenerationRequest, axes: list[Axis], legend: bool = True) -> ScriptResult:
    x, y, z = axes
    if all(axis.is_nothing for axis in axes):
        raise ValueError("X/Y/Z plot: choose at least one axis type")
    total = len(x.values) * len(y.values) * len(z.values)  # counted before the cells are listed
    if total > MAX_CELLS:
        raise ValueError(f"X/Y/Z plot: {total} images is more than {MAX_CELLS} (the cell limit); use fewer values")
    cells = [(iz, iy, ix) for iz in range(len(z.values)) for iy in range(len(y.values)) for ix in range(len(x.values))]
    base = _fixed_seed(request, axes)
    jobs = _run_cells(ctx, base, axes, cells)
    images = [(item.path or item.image, _caption(axes, cell)) for cell, job in jobs.items() for item in job.images]
    texts = [item.infotext for job in jobs.values() for item in job.images]
    if len(jobs) < len(cells):
        return ScriptResult(images, texts, f"Interrupted after {len(jobs)} of {len(cells)} images: no grid.")
    grids = [draw_grid([[jobs[(iz, iy, ix)].images[0].image for ix in range(len(x.values))]
                        for iy in range(len(y.values))],
                       x.labels if legend and not x.is_nothing else (),
                       y.labels if legend and not y.is_nothing else ())
             for iz in range(len(z.values))]
    grid = side_by_side(grids, z.labels if legend and not z.is_nothing else ())
    first = jobs[cells[0]].images[0]
    text = grid_infotext(first.infotext, axes)
    folder = "txt2img-grids" if request.init_image is None else "img2img-grids"
    path = ctx.save_image(grid, folder, text, first.seed)
    return ScriptResult([(path, TITLE), *images], [text, *texts], f"Saved the grid as `{path}` and {len(images)} images.")


def _fixed_seed(request: GenerationRequest, axes: list[Axis]) -> GenerationRequest:
    """Without a Seed axis every cell shares one seed (a random one when the tab says -1); the
    same for the variation seed without a Var. seed axis."""
    labels = {axis.type.label for axis in axes}
    if request.seed == -1 and "Seed" not in labels:
        request = request.replace(seed=random.randint(0, MAX_SEED))
    if request.subseed == -1 and "Var. seed" not in labels:
        request = request.replace(subseed=random.randint(0, MAX_SEED))
    return request


def _run_cells(ctx: ExtensionContext, base: GenerationRequest, axes: list[Axis],
               cells: list[tuple[int, int, int]]) -> dict[tuple[int, int, int], Any]:
    """Generate cell by cell; stop at an interrupt. A model axis puts the first model back after."""
    x, y, z = axes
    start_model = ctx.current_model() if any(axis.type.label == "Checkpoint name" for axis in axes) else None
    jobs: dict[tuple[int, int, int], Any] = {}
    try:
        for n, (iz, iy, ix) in enumerate(cells):
            ctx.progress(n / len(cells), f"{TITLE}: image {n + 1} of {len(cells)}")
            job = ctx.submit(z.apply(y.apply(x.apply(base, ix), iy), iz))
            if job.interrupted or not job.images:
                break
            jobs[(iz, iy, ix)] = job
    finally:
        if start_model and ctx.current_model() != start_model:
            ctx.load_model(start_model)
    return jobs


def _caption(axes: list[Axis], cell: tuple[int, int, int]) -> str:
    parts = [axis.labels[index] for axis, index in zip(axes, reversed(cell)) if not axis.is_nothing]
    return ", ".join(parts)


def grid_infotext(first: str, axes: list[Axis]) -> str:
    """The first cell's infotext plus `Script: X/Y/Z plot, X Type: ..., X Values: ...` (A1111's keys)."""
    pairs = [("Script", TITLE)]
    for name, axis in zip(AXES, axes):
        if not axis.is_nothing:
            pairs += [(f"{name.upper()} Type", axis.type.label), (f"{name.upper()} Values", axis.text)]
    return first + ", " + ", ".join(f"{key}: {_quote(value)}" for key, value in pairs)


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if any(ch in value for ch in ',:"\n') else value
