"""The Extensions tab (status, enable/disable) and the frame an extension's own tab is built in."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import gradio as gr

from studio.ui.errors import USER_ERRORS

if TYPE_CHECKING:
    from studio.service.extensions.hooks import GuardedTab
    from studio.service.extensions.service import ExtensionService

TRUST_NOTE = (
    "**Extensions are trusted code.** An extension is a Python package that runs inside the studio with "
    "your permissions, like any program you install: the studio isolates its failures (a broken extension "
    "is reported here and skipped) but does not sandbox it. Install only extensions you trust. "
    "Their `install.py`, if any, is never run.\n\n"
    "Enabling or disabling is saved and applies at the next start; a disabled extension's hooks and "
    "scripts stop at once."
)
COLUMNS = (("name", "Extension"), ("folder", "Folder"), ("version", "Version"), ("status", "Status"),
           ("description", "Description"))


def build_extensions_tab(extensions: "ExtensionService") -> None:
    gr.Markdown(TRUST_NOTE, elem_id="extensions_trust")
    if extensions.safe_mode:
        gr.Markdown("**Safe mode** (`--safe-mode`): no extension is loaded in this session.", elem_id="extensions_safe_mode")
    refusal = extensions.change_refusal()
    if refusal:
        gr.Markdown(f"⚠️ {refusal}", elem_id="extensions_refusal")
    table = gr.HTML(lambda: status_table(extensions), elem_id="extensions_table")
    with gr.Row(equal_height=True):
        folders = [row["folder"] for row in extensions.rows()]
        folder = gr.Dropdown(folders, value=folders[0] if folders else None, label="Extension folder",
                             elem_id="extensions_folder", scale=3)
        enable = gr.Button("Enable", elem_id="extensions_enable", scale=1)
        disable = gr.Button("Disable", elem_id="extensions_disable", scale=1)
        refresh = gr.Button("🔄 Refresh", elem_id="extensions_refresh", scale=1)
    message = gr.Markdown(elem_id="extensions_message")

    def change(name: str | None, enabled: bool) -> tuple[str, str]:
        if not name:
            return "Pick an extension first.", status_table(extensions)
        try:
            text = extensions.set_enabled(name, enabled)
        except USER_ERRORS as error:
            text = f"⛔ {error}"
        return text, status_table(extensions)

    enable.click(lambda name: change(name, True), inputs=folder, outputs=[message, table], queue=False)
    disable.click(lambda name: change(name, False), inputs=folder, outputs=[message, table], queue=False)
    refresh.click(lambda: status_table(extensions), outputs=table, queue=False)


def status_table(extensions: "ExtensionService") -> str:
    rows = extensions.rows()
    if not rows:
        return "<p>No extensions found in the extensions folder.</p>"
    head = "".join(f"<th>{title}</th>" for _, title in COLUMNS)
    body = "".join(
        f"<tr data-folder=\"{html.escape(row['folder'])}\" data-state=\"{html.escape(row['status'].split(':')[0])}\">"
        + "".join(f"<td class=\"ext-{key}\">{html.escape(row[key])}</td>" for key, _ in COLUMNS) + "</tr>"
        for row in rows)
    return f"<table class=\"extensions-table\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def build_extension_tab(tab: "GuardedTab") -> None:
    """Build an extension's tab; if it raises, hide what it built and show the error in its place."""
    with gr.Column() as column:
        error = tab.build()
    if error:
        column.visible = False
        gr.Markdown(f"⚠️ This tab could not be built. {error}", elem_classes="extension-error")
