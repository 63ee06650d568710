"""The Extras tab: upscale a single image, a batch of uploads or a server folder (A1111's "Batch from
directory") with one upscaler or two blended."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from studio.ui.batch import folder_boxes, shown
from studio.ui.errors import user_errors
from studio.ui.sharing import owner_of, user_of

if TYPE_CHECKING:
    from studio.service.extras import ExtrasService

RESIZE_MODES = ("Scale by", "Scale to")


def build_extras_tab(extras: "ExtrasService") -> dict[str, gr.components.Component]:
    names = extras.image_upscaler_names()
    with gr.Row():
        with gr.Column():
            with gr.Tabs(elem_id="extras_source"):
                with gr.Tab("Single image", id="single", elem_id="extras_single_tab") as single_tab:
                    image = gr.Image(label="Source", type="pil", image_mode="RGB", sources=["upload", "clipboard"],
                                     format="png", elem_id="extras_image", height=300)
                with gr.Tab("Batch", id="batch", elem_id="extras_batch_tab") as batch_tab:
                    files = gr.File(label="Images", file_count="multiple", file_types=["image"],
                                    elem_id="extras_batch_files")
                with gr.Tab("Batch from directory", id="folder", elem_id="extras_folder_tab") as folder_tab:
                    folders = folder_boxes("extras")
            mode = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[0], type="index", label="Resize",
                            elem_id="extras_resize_mode")
            with gr.Row():
                scale = gr.Slider(1, 8, value=2, step=0.05, label="Resize (scale by)", elem_id="extras_upscaling_resize")
                width = gr.Number(value=512, precision=0, label="Width (scale to)", elem_id="extras_upscaling_resize_w")
                height = gr.Number(value=512, precision=0, label="Height (scale to)", elem_id="extras_upscaling_resize_h")
                crop = gr.Checkbox(value=True, label="Crop to fit", elem_id="extras_upscaling_crop")
            with gr.Row():
                upscaler_1 = gr.Dropdown(names, value="Lanczos" if "Lanczos" in names else names[0], label="Upscaler 1",
                                         elem_id="extras_upscaler_1", info=upscaler_hint(extras))
                upscaler_2 = gr.Dropdown(names, value="None", label="Upscaler 2", elem_id="extras_upscaler_2")
                visibility = gr.Slider(0, 1, value=0, step=0.01, label="Upscaler 2 visibility",
                                       elem_id="extras_upscaler_2_visibility")
            with gr.Accordion("Face restoration (GFPGAN / CodeFormer)", open=False, elem_id="extras_face_restoration"):
                gfpgan = gr.Slider(0, 1, value=0, step=0.01, label="GFPGAN visibility",
                                   elem_id="extras_gfpgan_visibility")
                codeformer = gr.Slider(0, 1, value=0, step=0.01, label="CodeFormer visibility",
                                       elem_id="extras_codeformer_visibility")
                weight = gr.Slider(0, 1, value=0, step=0.01, elem_id="extras_codeformer_weight",
                                   label="CodeFormer weight (0 = maximum effect, 1 = minimum)")
                missing = [why for why in map(extras.face_restoration_missing, ("GFPGAN", "CodeFormer")) if why]
                if missing:  # where the files go (nothing is downloaded); a run asking for one is refused likewise
                    gr.Markdown("Files to place — " + " ".join(missing), elem_id="extras_face_restoration_reason")
            run = gr.Button("Upscale", variant="primary", elem_id="extras_generate", elem_classes="generate")
        with gr.Column():
            gallery = gr.Gallery(label="Result", columns=2, height=420, format="png", elem_id="extras_gallery",
                                 object_fit="contain", interactive=False)
            info = gr.Textbox(label="Info", lines=3, interactive=False, elem_id="extras_info")
    source = gr.State("single")
    single_tab.select(lambda: "single", outputs=source, queue=False)
    batch_tab.select(lambda: "batch", outputs=source, queue=False)
    folder_tab.select(lambda: "folder", outputs=source, queue=False)

    def upscale(kind: str, single: Image.Image | None, batch: list[Any] | None, input_dir: str, output_dir: str,
                resize_mode: int, by: float, to_w: float, to_h: float, crop_fit: bool, first: str, second: str,
                blend: float, gfpgan_visibility: float, codeformer_visibility: float, codeformer_weight: float,
                http: gr.Request,
                progress: gr.Progress = gr.Progress()) -> tuple:
        with user_errors():
            values = {"resize_mode": int(resize_mode), "upscaling_resize": float(by),
                      "upscaling_resize_w": int(to_w or 0), "upscaling_resize_h": int(to_h or 0),
                      "upscaling_crop": bool(crop_fit), "upscaler_1": first, "upscaler_2": second,
                      "extras_upscaler_2_visibility": float(blend), "gfpgan_visibility": float(gfpgan_visibility),
                      "codeformer_visibility": float(codeformer_visibility), "codeformer_weight": float(codeformer_weight)}
            if kind == "folder":
                result = extras.folder(values, input_dir, output_dir, lambda f, d: progress(f, desc=d), user=user_of(http))
                items, _ = shown(result.paths, extras.settings.outputs_dir)
                return items, result.summary() + "\n" + (result.infotexts[0] if result.infotexts else "")
            else:
                paths, text = extras.run(_images(kind, single, batch), values, user=user_of(http), owner=owner_of(http))
        return [(str(path), "{}x{}".format(*Image.open(path).size)) for path in paths], text

    run.click(upscale, inputs=[source, image, files, folders["input_dir"], folders["output_dir"], mode, scale, width,
                               height, crop, upscaler_1, upscaler_2, visibility, gfpgan, codeformer, weight],
              outputs=[gallery, info], concurrency_id="generation", concurrency_limit=1)
    return {"image": image, "gallery": gallery}


def _images(kind: str, single: Image.Image | None, batch: list[Any] | None) -> list[Image.Image]:
    if kind == "batch":
        if not batch:
            raise ValueError("Add one or more images to the batch first.")
        images = []
        for item in batch:
            path = item if isinstance(item, str) else getattr(item, "name", item)
            try:
                images.append(Image.open(path).convert("RGB"))
            except OSError as error:
                raise ValueError(f"{path}: not an image") from error
        return images
    if single is None:
        raise ValueError("Drop an image to upscale first.")
    return [single]


def upscaler_hint(extras: "ExtrasService") -> str:
    """Where model upscalers go (A1111's folders); they are listed at the next start or page load."""
    models = extras.settings.models_dir
    return (f"ESRGAN / Real-ESRGAN / SwinIR / DAT files (.safetensors or .pth) go in {models / 'ESRGAN'} "
            f"(or {models / 'RealESRGAN'}, {models / 'SwinIR'}, {models / 'DAT'}); restart the studio to list new ones")
