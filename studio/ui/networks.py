"""The Networks panel (LoRA and textual inversion cards with a search box; a click puts the tag or
the embedding's name into the prompt, a second click takes it out, as in A1111) and the header's
VAE picker."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from studio.ui.errors import USER_ERRORS

if TYPE_CHECKING:
    from studio.service.networks import NetworkService

CARDS_PER_PAGE = 48


@dataclass
class NetworksPanel:
    search: gr.Textbox
    refresh: gr.Button
    loras: gr.Dataset
    embeddings: gr.Dataset


def lora_tag(name: str) -> str:
    return f"<lora:{name}:1>"


def toggle(prompt: str, text: str) -> str:
    """Append `text` to the prompt, or remove it when it is there (a LoRA tag with any weight)."""
    prompt = prompt or ""
    if text.startswith("<lora:"):
        name = text[len("<lora:"):].rsplit(":", 1)[0]
        pattern = re.compile(rf"\s*<lora:{re.escape(name)}(:[^>]*)?>")
    else:
        pattern = re.compile(rf"(^|\s*,?\s*)(?<![\w]){re.escape(text)}(?![\w])")
    if pattern.search(prompt):
        return pattern.sub("", prompt, count=1).strip()
    separator = "" if not prompt or prompt.endswith((" ", "\n")) else " "
    return f"{prompt}{separator}{text}"


def _samples(names: list[str], query: str) -> list[list[str]]:
    query = (query or "").strip().lower()
    return [[name] for name in names if query in name.lower()]


def _empty(networks: "NetworkService") -> bool:
    return not networks.lora_names() and not networks.embedding_names()


def folders_hint(networks: "NetworkService") -> str:
    """Where the files go (A1111's folders), said when there is nothing to show yet."""
    models = networks.settings.models_dir
    return (f"ℹ️ No LoRA or embedding files yet. Put LoRA files (.safetensors) in `{models / 'Lora'}`, "
            f"textual inversion embeddings in `{models / 'embeddings'}` and VAE files in `{models / 'VAE'}`, "
            "then press 🔄 Refresh: they show here without a restart.")


def build_networks_panel(networks: "NetworkService", name: str, prompt: gr.Textbox) -> NetworksPanel:
    with gr.Accordion("Networks", open=False, elem_id=f"{name}_networks"):
        with gr.Row(equal_height=True):
            search = gr.Textbox(show_label=False, placeholder="Search LoRAs and embeddings", scale=4,
                                elem_id=f"{name}_networks_search")
            refresh = gr.Button("🔄 Refresh", elem_id=f"{name}_networks_refresh", scale=0, min_width=110)
        hint = gr.Markdown(folders_hint(networks), visible=_empty(networks), elem_id=f"{name}_networks_hint")
        with gr.Tabs():
            with gr.Tab("Lora", elem_id=f"{name}_networks_lora"):
                loras = gr.Dataset(components=[gr.Textbox(visible=False)], samples=_samples(networks.lora_names(), ""),
                                   layout="gallery", samples_per_page=CARDS_PER_PAGE, label="LoRA (models/Lora)",
                                   elem_id=f"{name}_lora_cards", elem_classes="network-cards")
            with gr.Tab("Textual Inversion", elem_id=f"{name}_networks_ti"):
                embeddings = gr.Dataset(components=[gr.Textbox(visible=False)],
                                        samples=_samples(networks.embedding_names(), ""), layout="gallery",
                                        samples_per_page=CARDS_PER_PAGE, label="Embeddings (models/embeddings)",
                                        elem_id=f"{name}_embedding_cards", elem_classes="network-cards")

    def insert_lora(text: str, sample: list[Any] | None) -> str:
        return toggle(text, lora_tag(str(sample[0]))) if sample else text

    def insert_embedding(text: str, sample: list[Any] | None) -> str:
        return toggle(text, str(sample[0])) if sample else text

    def listing(query: str) -> tuple[gr.Dataset, gr.Dataset, gr.Markdown]:
        return (gr.Dataset(samples=_samples(networks.lora_names(), query)),
                gr.Dataset(samples=_samples(networks.embedding_names(), query)),
                gr.Markdown(folders_hint(networks), visible=_empty(networks)))

    loras.click(insert_lora, inputs=[prompt, loras], outputs=prompt, queue=False)
    embeddings.click(insert_embedding, inputs=[prompt, embeddings], outputs=prompt, queue=False)
    search.change(listing, inputs=search, outputs=[loras, embeddings, hint], queue=False)
    refresh.click(listing, inputs=search, outputs=[loras, embeddings, hint], queue=False)
    return NetworksPanel(search, refresh, loras, embeddings)


def build_vae_picker(networks: "NetworkService") -> gr.Dropdown:
    """A1111's "SD VAE" quick setting: Automatic (the model's own) or a models/VAE entry. Every tab
    sends its value with the request; choosing one also sets it for API requests that name none."""
    # A VAE named by a pasted infotext may not exist here: the generation then says so by name.
    vae = gr.Dropdown(networks.vae_names(), value=networks.selected_vae(), label="SD VAE", elem_id="sd_vae", scale=2,
                      allow_custom_value=True)

    def choose(name: str) -> gr.Dropdown:
        try:
            return gr.Dropdown(value=networks.select_vae(name))
        except USER_ERRORS as error:
            gr.Warning(f"Could not select VAE: {error}")
            return gr.Dropdown(choices=networks.vae_names(), value=networks.selected_vae())

    vae.input(choose, inputs=vae, outputs=vae, queue=False)
    return vae
