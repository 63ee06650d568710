"""A1111-compatible "parameters" text: write it and parse it back.

Format (what A1111 writes and what every tool in its ecosystem reads):

    <prompt, possibly several lines>
    Negative prompt: <negative, possibly several lines>
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: ..., Model: ...

The parser is a port of A1111's `parse_generation_parameters`: values stay strings, unknown
keys are kept, "Size" becomes "Size-1"/"Size-2". The `key: value` pairs are found by a
hand-written scanner that gives the same pairs as A1111's regex in linear time (the regex
backtracks quadratically: a 64,000-character line took a minute).
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

from studio.generation.eta import infotext_eta
from studio.request import (
    CONTROL_MODES,
    CONTROL_RESIZE_MODES,
    INPAINTING_FILLS,
    OUTPAINT_FILLS,
    RESIZE_MODES,
    ControlUnit,
    GenerationRequest,
)

_SIZE = re.compile(r"^(\d+)x(\d+)$")
NEGATIVE_PREFIX = "Negative prompt:"


def quote(value: Any) -> str:
    """Quote a value the way A1111 does: JSON string when it holds , : or a newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def format_number(value: float) -> str:
    return f"{value:g}"


def write_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """Build the text: prompt, optional negative line, then `Key: value` pairs in order."""
    pairs = ", ".join(f"{key}: {quote(value)}" for key, value in params.items() if value is not None)
    negative = f"\n{NEGATIVE_PREFIX} {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{pairs}"


def request_params(request: GenerationRequest, model_name: str, model_hash: str) -> dict[str, Any]:
    """The ordered `Key: value` pairs A1111 writes, plus the img2img/inpaint ones for those modes."""
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": request.sampler_name,
        "Schedule type": None if request.scheduler == "Automatic" else request.scheduler,
        "CFG scale": format_number(request.cfg_scale),
        "Seed": request.seed,
        **variation_params(request),
        "Face restoration": request.face_restoration_model if request.restore_faces else None,  # A1111's place
        "Size": "{}x{}".format(*_output_size(request)),
        "Model hash": model_hash,
        "Model": model_name,
    }
    if request.cache_interval > 1:
        params["Cache interval"] = request.cache_interval
    if request.clip_skip != 1:
        params["Clip skip"] = request.clip_skip
    if request.token_merging_ratio > 0:  # A1111's keys
        params["Token merging ratio"] = request.token_merging_ratio
    if request.s_min_uncond > 0:
        params["NGMS"] = request.s_min_uncond
    if eta := infotext_eta(request.sampler_name, request.eta):  # A1111: "Eta DDIM" / "Eta", when not the default
        params[eta[0]] = eta[1]  # a float, as A1111 writes it ("Eta DDIM: 1.0")
    if request.styles:  # the prompts above are already expanded; the names are a record (not re-applied)
        params["Styles"] = json.dumps(list(request.styles), ensure_ascii=False)
    params.update(hires_params(request))
    if request.mode != "txt2img":
        params["Mode"] = request.mode
        params["Denoising strength"] = format_number(request.denoising_strength)
        if request.resize_mode:
            params["Resize mode"] = RESIZE_MODES[request.resize_mode]
    if request.outpainting:
        for side in ("left", "right", "up", "down"):
            params[f"Outpaint {side}"] = getattr(request, f"outpaint_{side}") or None
        params["Outpaint fill"] = OUTPAINT_FILLS[request.outpaint_fill]
    if request.mode == "inpaint":
        params["Mask blur"] = request.mask_blur
        params["Masked content"] = INPAINTING_FILLS[request.inpainting_fill]
        params["Inpaint area"] = "Only masked" if request.inpaint_full_res else "Whole picture"
        params["Masked area padding"] = request.inpaint_full_res_padding
        if request.inpainting_mask_invert:
            params["Mask mode"] = "Inpaint not masked"
    return params


def _output_size(request: GenerationRequest) -> tuple[int, int]:
    """What the file measures: outpainting's output is the extended canvas, not the sampling size."""
    if request.outpainting and request.init_image is not None:
        return request.outpaint_canvas()
    return request.width, request.height


NETWORK_KEYS_AFTER_MODEL = ("VAE hash", "VAE")  # A1111's order: ..., Model, VAE hash, VAE, ...


def with_networks(params: Mapping[str, Any], networks: Mapping[str, Any]) -> dict[str, Any]:
    """Insert the network keys where A1111 writes them: VAE after Model, Lora/TI hashes at the end."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        result[key] = value
        if key == "Model":
            result.update({k: networks[k] for k in NETWORK_KEYS_AFTER_MODEL if k in networks})
    if "Model" not in params:
        result.update({k: networks[k] for k in NETWORK_KEYS_AFTER_MODEL if k in networks})
    result.update({k: v for k, v in networks.items() if k not in NETWORK_KEYS_AFTER_MODEL})
    return result
def variation_params(request: GenerationRequest) -> dict[str, Any]:
    """A1111's variation seed keys (nothing for plain seeds)."""
    params: dict[str, Any] = {}
    if request.subseed_strength > 0:
        params["Variation seed"] = request.subseed
        params["Variation seed strength"] = format_number(request.subseed_strength)
    if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0:
        params["Seed resize from"] = f"{request.seed_resize_from_w}x{request.seed_resize_from_h}"
    return params


def hires_params(request: GenerationRequest) -> dict[str, Any]:
    """A1111's hires fix keys, in its order (nothing when hires fix is off)."""
    if not request.enable_hr:
        return {}
    params: dict[str, Any] = {"Denoising strength": format_number(request.denoising_strength)}
    if request.hr_resize_x or request.hr_resize_y:
        params["Hires resize"] = f"{request.hr_resize_x}x{request.hr_resize_y}"
    else:
        params["Hires upscale"] = format_number(request.hr_scale)
    if request.hr_second_pass_steps:
        params["Hires steps"] = request.hr_second_pass_steps
    params["Hires upscaler"] = request.hr_upscaler
    if request.hr_sampler_name:
        params["Hires sampler"] = request.hr_sampler_name
    if request.hr_prompt and request.hr_prompt != request.prompt:
        params["Hires prompt"] = request.hr_prompt
    if request.hr_negative_prompt and request.hr_negative_prompt != request.negative_prompt:
        params["Hires negative prompt"] = request.hr_negative_prompt
    return params


def control_unit_text(unit: ControlUnit, model_title: str) -> str:
    """sd-webui-controlnet's "ControlNet N" value (written quoted, as it contains commas)."""
    pairs = {
        "Module": unit.module,
        "Model": model_title,
        "Control Type": unit.control_type,
        "Weight": format_number(unit.weight),
        "Resize Mode": CONTROL_RESIZE_MODES[unit.resize_mode],
        "Threshold A": format_number(unit.threshold_a),
        "Threshold B": format_number(unit.threshold_b),
        "Guidance Start": format_number(unit.guidance_start),
        "Guidance End": format_number(unit.guidance_end),
        "Pixel Perfect": unit.pixel_perfect,
        "Control Mode": CONTROL_MODES[unit.control_mode],
    }
    return ", ".join(f"{key}: {value}" for key, value in pairs.items())


def parse_control_unit(text: str) -> dict[str, Any]:
    """ControlUnit fields (without the image) from a "ControlNet N" value."""
    raw = {key.strip(): value.strip() for key, value in (part.split(":", 1) for part in text.split(",") if ":" in part)}
    converters = {
        "Module": ("module", str), "Model": ("model", lambda v: v.split(" [")[0]),
        "Control Type": ("control_type", str), "Weight": ("weight", float),
        "Resize Mode": ("resize_mode", CONTROL_RESIZE_MODES.index), "Threshold A": ("threshold_a", float),
        "Threshold B": ("threshold_b", float), "Guidance Start": ("guidance_start", float),
        "Guidance End": ("guidance_end", float), "Pixel Perfect": ("pixel_perfect", lambda v: v == "True"),
        "Control Mode": ("control_mode", CONTROL_MODES.index),
    }
    return _convert(raw, converters)


def _convert(raw: Mapping[str, str], table: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    """Infotext values -> request field values by a key table; unparsable values are skipped."""
    values: dict[str, Any] = {}
    for key, (name, convert) in table.items():
        if key in raw:
            try:
                values[name] = convert(raw[key])
            except ValueError:
                continue
    return values


def parse_infotext(text: str) -> dict[str, str]:
    """Parse A1111 infotext into {"Prompt", "Negative prompt", key: value ...} (all strings)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    *head, last = lines if lines else [""]
    if len(find_params(last)) < 3:
        head.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in head:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX):].strip()
        (negative if in_negative else prompt).append(line)
    result: dict[str, str] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in find_params(last):
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = _unquote(value)
        size = _SIZE.match(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    return result


def find_params(line: str) -> list[tuple[str, str]]:
    """The `key: value` pairs of a line, exactly as A1111's regex
    `\\s*(\\w[\\w \\-/]+):\\s*("(?:\\\\.|[^\\\\"])+"|[^,]*)(?:,|$)` finds them with `findall`, in
    linear time (the regex backtracks quadratically on a long line without a colon). A failed
    try at position p fails at every later position inside the same run of key characters, so
    the scan resumes after that run."""
    pairs: list[tuple[str, str]] = []
    n, i = len(line), 0
    while i < n:
        start = i
        while start < n and line[start].isspace():
            start += 1
        if start >= n or not _is_word(line[start]):
            i = start + 1
            continue
        end = start + 1
        while end < n and _is_key_char(line[end]):
            end += 1
        if end - start < 2 or end >= n or line[end] != ":":
            i = end
            continue
        value_start = end + 1
        while value_start < n and line[value_start].isspace():
            value_start += 1
        value_end, i = _value(line, value_start)
        pairs.append((line[start:end], line[value_start:value_end]))
    return pairs


def _value(line: str, start: int) -> tuple[int, int]:
    """(end of the value, where the next search starts): a quoted value when its closing quote
    is followed by a comma or the end of the line, else everything up to the next comma."""
    n = len(line)
    if start < n and line[start] == '"':
        end = start + 1
        while end < n and line[end] != '"':
            if line[end] == "\\":
                if end + 1 >= n:
                    break
                end += 2
            else:
                end += 1
        if end < n and line[end] == '"' and end > start + 1:
            if end + 1 == n:
                return end + 1, n
            if line[end + 1] == ",":
                return end + 1, end + 2
    comma = line.find(",", start)
    return (n, n) if comma < 0 else (comma, comma + 1)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _is_key_char(char: str) -> bool:
    return char.isalnum() or char in "_ -/"


def _unquote(value: str) -> str:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


# Infotext key -> (request field, converter). Keys we don't know stay in the parsed dict.
_FIELDS: dict[str, tuple[str, Any]] = {
    "Prompt": ("prompt", str),
    "Negative prompt": ("negative_prompt", str),
    "Steps": ("steps", int),
    "Sampler": ("sampler_name", str),
    "Schedule type": ("scheduler", str),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", int),
    "Variation seed": ("subseed", int),
    "Variation seed strength": ("subseed_strength", float),
    "Seed resize from-1": ("seed_resize_from_w", int),
    "Seed resize from-2": ("seed_resize_from_h", int),
    "Size-1": ("width", int),
    "Size-2": ("height", int),
    "Model": ("model", str),
    "VAE": ("vae", str),
    "Batch size": ("batch_size", int),
    "Clip skip": ("clip_skip", int),
    "Denoising strength": ("denoising_strength", float),
    "Mask blur": ("mask_blur", int),
    "Masked area padding": ("inpaint_full_res_padding", int),
    "Resize mode": ("resize_mode", RESIZE_MODES.index),
    "Masked content": ("inpainting_fill", INPAINTING_FILLS.index),
    "Inpaint area": ("inpaint_full_res", lambda v: v == "Only masked"),
    "Mask mode": ("inpainting_mask_invert", lambda v: v == "Inpaint not masked"),
    "Cache interval": ("cache_interval", int),
    "Token merging ratio": ("token_merging_ratio", float),
    "NGMS": ("s_min_uncond", float),
    "Eta DDIM": ("eta", float),
    "Eta": ("eta", float),
    "Hires upscale": ("hr_scale", float),
    "Hires resize-1": ("hr_resize_x", int),
    "Hires resize-2": ("hr_resize_y", int),
    "Hires steps": ("hr_second_pass_steps", int),
    "Hires upscaler": ("hr_upscaler", str),
    "Hires sampler": ("hr_sampler_name", str),
    "Hires prompt": ("hr_prompt", str),
    "Hires negative prompt": ("hr_negative_prompt", str),
    "Outpaint left": ("outpaint_left", int),
    "Outpaint right": ("outpaint_right", int),
    "Outpaint up": ("outpaint_up", int),
    "Outpaint down": ("outpaint_down", int),
    "Outpaint fill": ("outpaint_fill", OUTPAINT_FILLS.index),
    "Refiner": ("refiner_checkpoint", lambda v: re.sub(r"\s*\[[0-9a-fA-F]{8,64}\]$", "", v.strip())),
    "Refiner switch at": ("refiner_switch_at", float),
}


def params_to_request_fields(params: Mapping[str, str]) -> dict[str, Any]:
    """Convert parsed infotext to GenerationRequest field values (skips unparsable ones)."""
    values = _convert(params, _FIELDS)
    # A1111's rule: hires fix was on when a hires key sits beside the denoising strength.
    if "Denoising strength" in params and any(k in params for k in ("Hires upscale", "Hires upscaler", "Hires resize-1")):
        values["enable_hr"] = True
    units = [parse_control_unit(params[k]) for k in sorted(params) if re.fullmatch(r"ControlNet \d+", k)]
    if units:
        values["controlnet_units"] = units
    if "refiner_checkpoint" not in values and "Steps" in params:
        values["refiner_checkpoint"] = None  # no `Refiner` key: made without one (Send-to clears a form's choice)
    if "Seed" in params:  # as A1111: no variation keys means plain seeds (Send-to resets a form's earlier choice)
        values.setdefault("subseed_strength", 0.0)
        values.setdefault("seed_resize_from_w", -1)
        values.setdefault("seed_resize_from_h", -1)
    if "Face restoration" in params:  # A1111 writes the restorer's name when "Restore faces" was on
        values.update(restore_faces=True, face_restoration_model=params["Face restoration"].strip())
    elif "Steps" in params:
        values["restore_faces"] = False
    if "vae" not in values and "Steps" in params:
        values["vae"] = "Automatic"  # A1111 writes `VAE` only when a VAE file replaced the model's own
    # A1111 >= 1.9 writes "Sampler: DPM++ 2M, Schedule type: Karras" (the request's `scheduler`);
    # older infotexts carry the schedule in the sampler name ("DPM++ 2M Karras"), still a sampler.
    # A sampler without a schedule type means Automatic (so Send-to resets a form's earlier choice).
    if "sampler_name" in values and not values.get("scheduler"):
        values["scheduler"] = "Automatic"
    if any(key.startswith("Outpaint ") and key != "Outpaint fill" for key in params):
        values.pop("width", None)  # outpainting's Size is its output (image + pads); it samples at that size
        values.pop("height", None)
    return values
