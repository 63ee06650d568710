"""Prompts from file or textbox (A1111's script): one generation per line of a text, each line a
prompt or `--option value` overrides of the tab's settings (see lines.py for the syntax).

Every line goes through the studio's normal generation (hooks run, each image is saved with its
own infotext). Every line is parsed and checked before the first image is made, so a bad line is
an error naming it, not a half-finished run.
"""
from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from studio.api import ExtensionApi, ExtensionContext, GenerationRequest, ScriptResult

from .lines import parse_line, prompt_lines

TITLE = "Prompts from file or textbox"
POSITIONS = ("start", "end")
MAX_SEED = 2**32 - 1
MAX_IMAGES = 1000


def register(api: ExtensionApi) -> None:
    api.add_script(TITLE, ui, run, api_args=values_from_script_args)


def ui() -> dict[str, Any]:
    import gradio as gr

    return {
        "checkbox_iterate": gr.Checkbox(False, label="Iterate seed every line"),
        "checkbox_iterate_batch": gr.Checkbox(False, label="Use same random seed for all lines"),
        "prompt_position": gr.Radio(list(POSITIONS), value="start", label="Insert prompts at the"),
        "prompt_txt": gr.Textbox(label="List of prompt inputs", lines=3,
                                 placeholder='a cat\n--prompt "a dog" --steps 10 --seed 3'),
        "file": gr.File(label="Upload prompt inputs (.txt)", file_types=[".txt"], type="filepath", height=90),
    }


def values_from_script_args(args: Sequence[Any], request: GenerationRequest) -> Mapping[str, Any]:
    """A1111's positional script_args: [checkbox_iterate, checkbox_iterate_batch, prompt_position,
    prompt_txt] (1.7 and later) or [checkbox_iterate, checkbox_iterate_batch, prompt_txt] (older)."""
    args = list(args)
    if len(args) == 4:
        iterate, same, position, text = args
    elif len(args) == 3:
        (iterate, same, text), position = args, "start"
    else:
        raise ValueError("Prompts from file or textbox takes [checkbox_iterate, checkbox_iterate_batch, "
                         f"prompt_position, prompt_txt]; got {len(args)} value(s)")
    if position not in POSITIONS:
        raise ValueError(f"prompt_position must be 'start' or 'end' (got {position!r})")
    if not isinstance(text, str):
        raise ValueError("prompt_txt must be text, one prompt per line")
    return {"checkbox_iterate": bool(iterate), "checkbox_iterate_batch": bool(same), "prompt_position": position,
            "prompt_txt": text}


def run(ctx: ExtensionContext, request: GenerationRequest, values: Mapping[str, Any]) -> ScriptResult:
    requests = line_requests(ctx, request, values)
    images: list[tuple[Any, str]] = []
    texts: list[str] = []
    for n, line_request in enumerate(requests):
        ctx.progress(n / len(requests), f"{TITLE}: line {n + 1} of {len(requests)}")
        job = ctx.submit(line_request)
        images += [(item.path or item.image, _caption(line_request.prompt)) for item in job.images]
        texts += [item.infotext for item in job.images]
        if job.interrupted:
            return ScriptResult(images, texts, f"Interrupted after {n + 1} of {len(requests)} lines.")
    return ScriptResult(images, texts, f"{len(requests)} line(s), {len(images)} image(s).")


def line_requests(ctx: ExtensionContext, request: GenerationRequest,
                  values: Mapping[str, Any]) -> list[GenerationRequest]:
    """One checked request per line, with the seeds A1111 gives them."""
    text = str(values.get("prompt_txt") or "")
    upload = values.get("file")
    if upload:  # the uploaded file replaces the textbox, as in A1111
        with open(str(upload), encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    iterate, same = bool(values.get("checkbox_iterate")), bool(values.get("checkbox_iterate_batch"))
    position = values.get("prompt_position") or "start"
    samplers = list(ctx.samplers)
    seed = request.seed
    if (iterate or same) and seed == -1:
        seed = random.randint(0, MAX_SEED)
    requests, total = [], 0
    for number, line in prompt_lines(text):
        fields = parse_line(number, line, samplers)
        fields = _merged_prompts(fields, request, position)
        line_request = request.replace(**{"seed": seed, **fields})
        try:
            line_request = line_request.validate()
        except ValueError as error:
            raise ValueError(f"{TITLE}: line {number} ({line[:120]}): {error}") from None
        total += line_request.batch_size * line_request.n_iter
        if total > MAX_IMAGES:
            raise ValueError(f"{TITLE}: more than {MAX_IMAGES} images in all; use fewer lines or a smaller batch")
        requests.append(line_request)
        if iterate and seed != -1:
            seed = (seed + line_request.batch_size * line_request.n_iter) % (MAX_SEED + 1)
    return requests


def _merged_prompts(fields: dict[str, Any], request: GenerationRequest, position: str) -> dict[str, Any]:
    """A1111: a line's prompt goes at the start (or end) of the tab's prompt, when the tab has one."""
    for key in ("prompt", "negative_prompt"):
        own, tab = fields.get(key), getattr(request, key)
        if own and tab:
            fields[key] = f"{own} {tab}" if position == "start" else f"{tab} {own}"
    return fields


def _caption(prompt: str) -> str:
    return prompt if len(prompt) <= 60 else prompt[:57] + "…"
