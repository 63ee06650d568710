"""Prompt matrix (A1111's script): split the prompt at `|`; the first part is always used, each
other part is in or out, giving 2^(parts-1) prompts; one image per prompt (same seed, or seed+i
with "different seeds") and a labelled grid of them all.

Every image goes through the studio's normal generation (hooks run, each is saved with its own
infotext); the grid is saved under outputs/<mode>-grids/ with the first image's infotext, as A1111
does.
"""
from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from studio.api import ExtensionApi, ExtensionContext, GenerationRequest, ScriptResult

from .grid import draw_matrix

TITLE = "Prompt matrix"
PROMPT_TYPES = ("positive", "negative")
DELIMITERS = {"comma": ", ", "space": " "}
MAX_PARTS = 9  # 256 images
MAX_SEED = 2**32 - 1


def register(api: ExtensionApi) -> None:
    api.add_script(TITLE, ui, run, api_args=values_from_script_args)


def ui() -> dict[str, Any]:
    import gradio as gr

    gr.Markdown("Separate the parts of the prompt with `|`: `a cat | in a hat | at night` makes 4 images.")
    return {
        "put_at_start": gr.Checkbox(False, label="Put variable parts at start of prompt"),
        "different_seeds": gr.Checkbox(False, label="Use different seed for each picture"),
        "prompt_type": gr.Radio(list(PROMPT_TYPES), value="positive", label="Select prompt"),
        "variations_delimiter": gr.Radio(list(DELIMITERS), value="comma", label="Select joining char"),
        "margin_size": gr.Slider(0, 64, value=0, step=2, label="Grid margins (px)"),
    }


def values_from_script_args(args: Sequence[Any], request: GenerationRequest) -> Mapping[str, Any]:
    """A1111's positional script_args: [put_at_start, different_seeds, prompt_type,
    variations_delimiter, margin_size]; older A1111 sent only the first two (the rest default)."""
    names = ("put_at_start", "different_seeds", "prompt_type", "variations_delimiter", "margin_size")
    if len(args) > len(names):
        raise ValueError(f"Prompt matrix takes at most {len(names)} script_args ({', '.join(names)})")
    values = {**DEFAULTS, **dict(zip(names, args))}
    return check(values)


DEFAULTS: Mapping[str, Any] = {"put_at_start": False, "different_seeds": False, "prompt_type": "positive",
                               "variations_delimiter": "comma", "margin_size": 0}


def check(values: Mapping[str, Any]) -> dict[str, Any]:
    values = {**DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
    if values["prompt_type"] not in PROMPT_TYPES:
        raise ValueError(f"prompt_type must be 'positive' or 'negative' (got {values['prompt_type']!r})")
    if values["variations_delimiter"] not in DELIMITERS:
        raise ValueError(f"variations_delimiter must be 'comma' or 'space' (got {values['variations_delimiter']!r})")
    margin = values["margin_size"]
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 256:
        raise ValueError(f"margin_size must be a number of pixels from 0 to 256 (got {margin!r})")
    return {**values, "margin_size": int(margin), "put_at_start": bool(values["put_at_start"]),
            "different_seeds": bool(values["different_seeds"])}


def matrix_prompts(prompt: str, put_at_start: bool, delimiter: str) -> tuple[list[str], list[str]]:
    """(the parts, the 2^(parts-1) prompts): prompt n uses the parts whose bit is set in n."""
    parts = prompt.split("|")
    if len(parts) < 2:
        raise ValueError("Prompt matrix: separate the parts of the prompt with |, e.g. 'a cat|in a hat|at night'")
    if len(parts) > MAX_PARTS:
        raise ValueError(f"Prompt matrix: {len(parts)} parts make {2 ** (len(parts) - 1)} images; "
                         f"at most {MAX_PARTS} parts")
    prompts = []
    for number in range(2 ** (len(parts) - 1)):
        chosen = [text.strip().strip(",") for n, text in enumerate(parts[1:]) if number & (1 << n)]
        chosen = [*chosen, parts[0]] if put_at_start else [parts[0], *chosen]
        prompts.append(delimiter.join(chosen))
    return parts, prompts


def run(ctx: ExtensionContext, request: GenerationRequest, values: Mapping[str, Any]) -> ScriptResult:
    values = check(values)
    positive = values["prompt_type"] == "positive"
    parts, prompts = matrix_prompts(request.prompt if positive else request.negative_prompt,
                                    values["put_at_start"], DELIMITERS[values["variations_delimiter"]])
    seed = request.seed if request.seed != -1 else random.randint(0, MAX_SEED)
    base = request.replace(batch_size=1, n_iter=1)
    jobs = []
    for n, prompt in enumerate(prompts):
        ctx.progress(n / len(prompts), f"{TITLE}: image {n + 1} of {len(prompts)}")
        own_seed = (seed + n) % (MAX_SEED + 1) if values["different_seeds"] else seed
        job = ctx.submit(base.replace(seed=own_seed, **{"prompt" if positive else "negative_prompt": prompt}))
        if job.interrupted or not job.images:
            break
        jobs.append((prompt, job.images[0]))
    images = [(item.path or item.image, prompt) for prompt, item in jobs]
    texts = [item.infotext for _, item in jobs]
    if len(jobs) < len(prompts):
        return ScriptResult(images, texts, f"Interrupted after {len(jobs)} of {len(prompts)} images: no grid.")
    variable = [part.strip() for part in parts[1:]]
    across = -(-len(variable) // 2)  # A1111: the first half of the parts over the columns
    grid = draw_matrix([item.image for _, item in jobs], 2 ** across, variable[:across], variable[across:],
                       values["margin_size"])
    folder = "txt2img-grids" if request.init_image is None else "img2img-grids"
    first = jobs[0][1]
    path = ctx.save_image(grid, folder, first.infotext, first.seed)
    return ScriptResult([(path, TITLE), *images], [first.infotext, *texts],
                        f"Saved the grid as `{path}` and {len(images)} images.")
