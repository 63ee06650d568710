"""img2img "Batch" (A1111's tab): every image of a server folder through the img2img tab's
settings, saved to an output folder; with a mask folder, inpainted. Folders are checked by the
core (studio/service/folders.py): any folder for the local operator, only outputs/ on a shared server."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from studio.ui.errors import user_errors
from studio.ui.generation import GenerationTab
from studio.ui.sharing import user_of

if TYPE_CHECKING:
    from studio.service.generation_base import GenerationService

MAX_SHOWN = 48  # a batch may hold thousands: the gallery shows the first ones
FOLDER_HELP = ("Folders on the server. Relative paths start in outputs/. When the studio is reachable from other "
               "machines (--listen, --share, a Space) only folders inside outputs/ (and --batch-root folders, "
               "to read) may be used.")


def folder_boxes(name: str, mask: bool = False) -> dict[str, gr.Textbox]:
    boxes = {"input_dir": gr.Textbox(label="Input directory", elem_id=f"{name}_batch_input_dir"),
             "output_dir": gr.Textbox(label="Output directory (empty: outputs/)", elem_id=f"{name}_batch_output_dir")}
    if mask:
        boxes["mask_dir"] = gr.Textbox(label="Inpaint batch mask directory (optional: masks named as the images)",
                                       elem_id=f"{name}_batch_mask_dir")
    gr.Markdown(FOLDER_HELP, elem_classes="batch-help")
    return boxes


def shown(paths: list[Path], outputs_dir: str | Path) -> tuple[list[tuple[Any, str]], list[str]]:
    """Gallery items for a batch's saved files, and their paths for "Send to" (empty when some are
    outside outputs/). The page may load files from outputs/ only, so an image saved in another
    folder (the local operator's choice) is shown as pixels instead of by its path."""
    root = Path(outputs_dir).resolve()
    inside = all(path.resolve().is_relative_to(root) for path in paths)
    items: list[tuple[Any, str]] = []
    for path in paths[:MAX_SHOWN]:
        if inside:
            items.append((str(path), path.name))
        else:
            with Image.open(path) as image:
                items.append((image.convert("RGB"), path.name))
    return items, ([str(path) for path in paths[:MAX_SHOWN]] if inside else [])


def build_img2img_batch(generation: "GenerationService", tab: GenerationTab) -> None:
    with gr.Accordion("Batch: a folder of images in, a folder out", open=False, elem_id="img2img_batch"):
        boxes = folder_boxes("img2img", mask=True)
        run = gr.Button("Run batch", variant="primary", elem_id="img2img_batch_run")
        status = gr.Markdown(elem_id="img2img_batch_status")
    control = tab.control

    def run_batch(values: dict[Any, Any], http: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple:
        with user_errors():
            request = tab.form.to_request(values, **(control.derive(values) if control else {}))
            result = generation.img2img_batch(request, values[boxes["input_dir"]], values[boxes["output_dir"]],
                                              values[boxes["mask_dir"]], lambda f, d: progress(f, desc=d),
                                              user=user_of(http))
        images, paths = shown(result.paths, generation.settings.outputs_dir)
        return (gr.Gallery(value=images, selected_index=0 if images else None), result.summary(),
                list(result.infotexts[:MAX_SHOWN]), paths, 0, result.infotexts[0] if result.infotexts else "")

    run.click(run_batch, inputs=tab.request_inputs | set(boxes.values()),
              outputs=[tab.gallery, status, tab.infotexts, tab.last_images, tab.selected, tab.infotext],
              concurrency_id="generation", concurrency_limit=1, show_progress_on=[tab.gallery])
