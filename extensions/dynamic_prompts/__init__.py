"""Dynamic prompts, expanded per image through on_before_image (extension API 1.1).

Random mode (the default): image i's prompt is expanded from image i's own seed, so a batch count
of 4 gives four expansions, and the same seed always gives the same prompt. Combinatorial mode:
image i gets the i-th of all combinations (in order; after the last one it starts again), so a
batch count equal to the number of combinations makes each prompt once. The negative prompt is
always expanded from the image's seed. The mode is chosen on the "Dynamic prompts" tab and kept
in <cache_dir>/dynamic_prompts.json.

The saved prompt is the expanded one and the template is kept in the infotext ("Template",
"Negative Template", as sd-dynamic-prompts writes them); each image's recipe holds its own
prompt, so Reproduce regenerates it with or without this extension."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from studio.api import ExtensionApi, ExtensionContext, GenerationRequest

from .syntax import combinations, expand, has_syntax, load_wildcards

MODES = ("random", "combinatorial")
OPTIONS_FILE = "dynamic_prompts.json"


@dataclass
class Options:
    """The extension's one option, kept in a small JSON file (None: in memory only)."""

    path: Path | None = None
    mode: str = "random"

    @classmethod
    def load(cls, path: Path | None) -> "Options":
        try:
            mode = json.loads(path.read_text(encoding="utf-8")).get("mode", "random") if path else "random"
        except (OSError, ValueError, AttributeError):
            mode = "random"
        return cls(path, mode if mode in MODES else "random")

    def set_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"dynamic prompts mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.mode = mode
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"mode": mode}), encoding="utf-8")
        return mode


def register(api: ExtensionApi) -> None:
    cache = api.settings.get("cache_dir")
    options = Options.load(Path(cache) / OPTIONS_FILE if cache else None)
    api.on_before_image(partial(expand_image, api.directory / "wildcards", options))
    api.add_tab("Dynamic prompts", partial(build_tab, options))


def expand_image(wildcards_dir: Path, options: Options, request: GenerationRequest,
                 index: int = 0) -> tuple[GenerationRequest, dict[str, str]] | None:
    """The prompt of image `index` (whose seed is request.seed)."""
    if not (has_syntax(request.prompt) or has_syntax(request.negative_prompt)):
        return None
    cards = load_wildcards(wildcards_dir)
    rng = random.Random(request.seed)
    if options.mode == "combinatorial":
        every = combinations(request.prompt, cards)
        prompt = every[index % len(every)]
    else:
        prompt = expand(request.prompt, rng, cards)
    negative = expand(request.negative_prompt, rng, cards)
    params = {}
    if prompt != request.prompt:
        params["Template"] = request.prompt
    if negative != request.negative_prompt:
        params["Negative Template"] = request.negative_prompt
    return request.replace(prompt=prompt, negative_prompt=negative), params


def build_tab(options: Options, ctx: ExtensionContext) -> None:
    import gradio as gr

    gr.Markdown("`{red|blue}` picks a variant, `__color__` a line of `wildcards/color.txt`; each image of a "
                "batch gets its own prompt.")
    mode = gr.Radio(list(MODES), value=options.mode, label="Mode", elem_id="dynamic_prompts_mode",
                    info="random: from each image's seed · combinatorial: image i gets the i-th combination")
    mode.input(options.set_mode, inputs=mode, outputs=mode, queue=False)
