"""Outputs history: browse outputs/ newest first, search infotexts, send to a tab, reproduce, delete.

Delete asks first, in the page (a panel with the file's name, "Yes, delete" and "Cancel"), not in
a toast: the question stays until answered. The core (studio/records/history.py) deletes only a PNG inside
outputs/ and its companions."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from studio.ui.errors import USER_ERRORS, user_errors
from studio.ui.pnginfo import PngInfoTab
from studio.ui.sharing import user_of

if TYPE_CHECKING:
    from studio.service.generation_base import GenerationService
    from studio.service.outputs import OutputService

PER_PAGE = 24


def build_history_tab(records: "OutputService", generation: "GenerationService") -> PngInfoTab:
    with gr.Row():
        query = gr.Textbox(label="Search the parameters (every word must occur)", elem_id="history_search", scale=4)
        refresh = gr.Button("🔄 Refresh", elem_id="history_refresh", scale=0, min_width=100)
    with gr.Row():
        previous = gr.Button("◀ Newer", elem_id="history_previous", size="sm")
        page_label = gr.Markdown(elem_id="history_page")
        following = gr.Button("Older ▶", elem_id="history_next", size="sm")
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Outputs", columns=6, height=520, format="png", elem_id="history_gallery",
                                 object_fit="contain", interactive=False, allow_preview=False)
        with gr.Column(scale=2):
            parameters = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="history_parameters")
            with gr.Row():
                buttons = {name: gr.Button(f"Send to {name}", elem_id=f"history_send_{name}", size="sm")
                           for name in ("txt2img", "img2img", "inpaint")}
            with gr.Row():
                reproduce = gr.Button("Reproduce", elem_id="history_reproduce", size="sm")
                delete = gr.Button("🗑️ Delete", variant="stop", elem_id="history_delete", size="sm")
            with gr.Group(visible=False, elem_id="history_delete_confirm") as confirm_box:
                question = gr.Markdown(elem_id="history_delete_question")
                with gr.Row():
                    yes = gr.Button("Yes, delete", variant="stop", elem_id="history_delete_yes", size="sm")
                    no = gr.Button("Cancel", elem_id="history_delete_cancel", size="sm")
            status = gr.Markdown(elem_id="history_status")
            reproduced = gr.Image(label="Reproduced", type="filepath", interactive=False, format="png",
                                  elem_id="history_reproduced", height=160)
    page, paths, texts = gr.State(1), gr.State([]), gr.State([])
    selected, fields, pending = gr.State(None), gr.State({}), gr.State(None)

    def show(number: int, words: str, http: gr.Request) -> tuple:
        result = records.history_page(int(number), PER_PAGE, words or "", user=user_of(http))  # only the caller's outputs
        items = [(str(item.path), f"{item.mode} · {item.path.name}") for item in result.items]
        label = f"Page {result.page} of {result.pages} · {result.total} image(s)"
        return (items, result.page, [str(i.path) for i in result.items], [i.infotext for i in result.items], label,
                None, "", {})

    def first(words: str, http: gr.Request) -> tuple:
        return show(1, words, http)

    def newer(number: int, words: str, http: gr.Request) -> tuple:
        return show(max(1, number - 1), words, http)

    def older(number: int, words: str, http: gr.Request) -> tuple:
        return show(number + 1, words, http)

    outputs = [gallery, page, paths, texts, page_label, selected, parameters, fields]
    refresh.click(show, inputs=[page, query], outputs=outputs, queue=False)
    query.submit(first, inputs=query, outputs=outputs, queue=False)
    previous.click(newer, inputs=[page, query], outputs=outputs, queue=False)
    following.click(older, inputs=[page, query], outputs=outputs, queue=False)

    def pick(files: list[str], infotexts: list[str], event: gr.SelectData) -> tuple:
        index = event.index if isinstance(event.index, int) else 0
        if index >= len(files):
            return None, "", {}
        with user_errors():
            info = records.read_png(Path(files[index]))
        return files[index], info["infotext"], info["fields"]

    gallery.select(pick, inputs=[paths, texts], outputs=[selected, parameters, fields], queue=False)

    def revisit(number: int, words: str, current: str | None, http: gr.Request) -> tuple:
        """Back on the tab (e.g. after Send to): the same page, and the selected image stays selected
        (Reproduce and Delete act on it) while it is still on that page."""
        shown = show(number, words, http)
        files = shown[2]
        if not current or current not in files:
            return shown
        try:
            info = records.read_png(Path(current))
        except USER_ERRORS:
            return shown
        index = files.index(current)
        return (gr.Gallery(value=shown[0], selected_index=index), *shown[1:5], current, info["infotext"], info["fields"])

    def ask(path: str | None) -> tuple:
        if not path:
            return gr.Group(visible=False), "", None, "Select an image first."
        name = Path(path).name
        text = (f"Delete **{name}** (and its saved mask, init and control images, if any)? "
                "This cannot be undone.")
        return gr.Group(visible=True), text, path, ""

    delete.click(ask, inputs=selected, outputs=[confirm_box, question, pending, status], queue=False)

    def confirm(path: str | None, number: int, words: str, http: gr.Request) -> tuple:
        if not path:
            return (*show(number, words, http), gr.Group(visible=False), None, "Nothing to delete.")
        try:
            removed = records.delete(path, user=user_of(http))  # only inside the caller's outputs
        except USER_ERRORS as error:
            return (*show(number, words, http), gr.Group(visible=False), None, f"⚠️ Not deleted: {error}")
        note = f"Deleted `{Path(path).name}`" + (f" and {len(removed) - 1} companion file(s)." if len(removed) > 1
                                                  else ".")
        return (*show(number, words, http), gr.Group(visible=False), None, note)

    yes.click(confirm, inputs=[pending, page, query], outputs=[*outputs, confirm_box, pending, status], queue=False)
    no.click(lambda path: (gr.Group(visible=False), None, f"Kept `{Path(path).name}`." if path else ""),
             inputs=pending, outputs=[confirm_box, pending, status], queue=False)


    def run_reproduce(path: str | None, http: gr.Request) -> tuple[str | None, str]:
        if not path:
            raise gr.Error("Select an image first.", print_exception=False)
        with user_errors():
            output, _, notes = generation.reproduce(Path(path), user_of(http))
        return output, "\n".join(f"⚠️ {note}" for note in notes) or "Reproduced."

    reproduce.click(run_reproduce, inputs=selected, outputs=[reproduced, status],
                    concurrency_id="generation", concurrency_limit=1)
    return PngInfoTab(selected, fields, buttons, load=(revisit, [page, query, selected], outputs))
