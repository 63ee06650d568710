"""HTTP API shaped like AUTOMATIC1111's /sdapi/v1, mounted beside the Gradio app.

Request bodies use A1111's field names and defaults and are mapped by name onto the one
GenerationRequest; generation goes through the studio's engine (its lock serialises API and UI
jobs). Routes are plain `def`s, so FastAPI runs them in its threadpool and /progress and
/interrupt keep answering while a generation runs. Errors raised by the core
(RequestError, ModelError, unknown sampler) become 422 here, and only here.

ControlNet units come in sd-webui-controlnet's shape (`alwayson_scripts.controlnet.args`) and
become ControlUnits; /controlnet/* lists models and modules as that extension does.
POST /studio/v1/reproduce regenerates the exact image from one of our PNGs (studio.reproduce).

Not served yet: upscalers, embeddings, scripts, other always-on scripts.
"""
from __future__ import annotations

import base64
import io
import json
import re
import secrets
import time
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio import __version__, infotext, jobs, reproduce, storage
from studio.control.models import ControlNetEntry, discover_controlnets
from studio.control.preprocessors import PREPROCESSORS
from studio.errors import StudioError
from studio.models import DEFAULT_MODEL_TITLE, ModelEntry, find_model
from studio.request import CONTROL_MODES, CONTROL_RESIZE_MODES, ControlUnit, GenerationRequest, RequestError, decode_image
from studio.samplers import UnknownSamplerError, resolve_sampler_name
from studio.settings import Settings
from studio.extras import refuse_face_restoration
from studio.web_extras import extras_routes

if TYPE_CHECKING:
    from studio.app import Studio

PREFIX = "/sdapi/v1"
STUDIO_PREFIX = "/studio/v1"
CONTROLNET_API_VERSION = 2  # sd-webui-controlnet's external_code.get_api_version()
# The checkpoint titles A1111 shows carry the short hash: "model.safetensors [6ce0161689]".
_TITLE_HASH = re.compile(r"^(.*?)\s*\[[0-9a-fA-F]{8,64}\]$")


class ApiExposureError(StudioError):
    """The API would be reachable from the network without credentials."""


def check_exposure(settings: Settings) -> None:
    """Refuse an open API on a public address (A1111 refuses it too)."""
    if settings.api and settings.listens_publicly and settings.api_auth is None:
        raise ApiExposureError(
            "the HTTP API would be open to the network (--listen, --host or --share): "
            "set --api-auth user:password, or start with --no-api"
        )


# ---------------------------------------------------------------------------------------------
# Request bodies: A1111's names and defaults. Unknown fields are ignored, as A1111 ignores them.


class Txt2ImgBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    sampler_name: str | None = None
    sampler_index: str = "Euler"
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int | None = Field(default=None, description="A1111: 512. Here: the model's native size when left out.")
    height: int | None = Field(default=None, description="A1111: 512. Here: the model's native size when left out.")
    enable_hr: bool = False
    denoising_strength: float | None = Field(default=None, description="txt2img: the hires pass's strength")
    hr_scale: float = 2.0
    hr_upscaler: str | None = Field(default=None, description="see /sdapi/v1/upscalers; null: Latent")
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_sampler_name: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    restore_faces: bool | None = Field(default=None, description="refused: face restoration is not available")
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    script_name: str | None = None
    script_args: list[Any] = []
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] | None = None


class Img2ImgBody(Txt2ImgBody):
    init_images: list[str] | None = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    mask: str | None = None
    mask_blur: int | None = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    include_init_images: bool = False
    outpaint_left: int = Field(default=0, description="outpainting: pixels added on the left (also right/up/down)")
    outpaint_right: int = 0
    outpaint_up: int = 0
    outpaint_down: int = 0
    outpaint_fill: int = Field(default=0, description="0: stretch the edge pixels, 1: noise")


class ControlNetUnitArgs(BaseModel):
    """One item of `alwayson_scripts.controlnet.args`: sd-webui-controlnet's ControlNetUnit fields."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    enabled: bool = True
    module: str = "none"
    model: str | None = Field(default="None", description='a /controlnet/model_list title, with or without " [hash]"; "None": the first of the type')
    weight: float = 1.0
    image: str | dict[str, Any] | None = Field(default=None, description="base64 image, or {\"image\": base64, \"mask\": null}")
    input_image: str | None = Field(default=None, description="older clients' name for `image`")
    resize_mode: int | str = Field(default=1, description="0/1/2 or Just Resize / Crop and Resize / Resize and Fill")
    processor_res: int = Field(default=-1, description="accepted and ignored")
    threshold_a: float = Field(default=-1, description="negative: the module's default")
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: int | str = Field(default=0, description="0/1/2 or Balanced / My prompt is more important / ControlNet is more important")
    pixel_perfect: bool = False
    advanced_weighting: list[float] | None = None


class GenerationResponse(BaseModel):
    images: list[str] = Field(description="base64 PNGs with their A1111 `parameters` text chunk")
    parameters: dict[str, Any]
    info: str = Field(description="JSON text: seed, all_seeds, infotexts, prompt, ...")


class ReproduceBody(BaseModel):
    image: str = Field(description="base64 PNG saved by this studio (it carries the `studio` recipe chunk)")


class ReproduceResponse(GenerationResponse):
    warnings: list[str] = Field(description="why the pixels may differ (model hash, library versions, threads)")


class PngInfoBody(BaseModel):
    image: str = Field(description="base64 PNG, with or without a data: prefix")


class PngInfoResponse(BaseModel):
    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: dict[str, Any]
    current_image: str | None = None
    textinfo: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    title: str
    model_name: str
    hash: str | None
    sha256: str | None
    filename: str
    config: str | None


# ---------------------------------------------------------------------------------------------
# Mapping A1111 fields onto the GenerationRequest (by name).


def to_request(body: Txt2ImgBody, studio: "Studio") -> GenerationRequest:
    _refuse_unsupported(body)
    values: dict[str, Any] = {
        "prompt": body.prompt,
        "negative_prompt": body.negative_prompt,
        "sampler_name": _sampler(body, studio),
        "steps": body.steps,
        "cfg_scale": body.cfg_scale,
        "width": body.width,
        "height": body.height,
        "seed": body.seed,
        "batch_size": body.batch_size,
        "n_iter": body.n_iter,
        "model": _checkpoint(body.override_settings, studio),
    }
    if isinstance(body, Img2ImgBody):
        values.update(_img2img_values(body))
    else:
        values.update(hires_values(body))
    values["controlnet_units"] = controlnet_units(body, studio, values["model"])
    return GenerationRequest(**values).validate()


def _img2img_values(body: Img2ImgBody) -> dict[str, Any]:
    if not body.init_images:
        raise RequestError("init_images must hold one base64 image")
    if body.inpainting_mask_invert not in (0, 1):
        raise RequestError(f"inpainting_mask_invert must be 0 or 1 (got {body.inpainting_mask_invert})")
    return {
        "init_image": decode_image(body.init_images[0], "init_images[0]"),
        "denoising_strength": body.denoising_strength,
        "resize_mode": body.resize_mode,
        "mask": decode_image(body.mask, "mask") if body.mask else None,
        "mask_blur": body.mask_blur if body.mask_blur is not None else body.mask_blur_x,
        "inpainting_fill": body.inpainting_fill,
        "inpaint_full_res": body.inpaint_full_res,
        "inpaint_full_res_padding": body.inpaint_full_res_padding,
        "inpainting_mask_invert": bool(body.inpainting_mask_invert),
        **{name: getattr(body, name) for name in ("outpaint_left", "outpaint_right", "outpaint_up", "outpaint_down",
                                                  "outpaint_fill")},
    }


def hires_values(body: Txt2ImgBody) -> dict[str, Any]:
    """A1111's hires fix fields, by the same names (its "Use same sampler" is our empty name)."""
    sampler = body.hr_sampler_name or ""
    values: dict[str, Any] = {
        "enable_hr": body.enable_hr, "hr_scale": body.hr_scale, "hr_upscaler": body.hr_upscaler or "Latent",
        "hr_second_pass_steps": body.hr_second_pass_steps, "hr_resize_x": body.hr_resize_x,
        "hr_resize_y": body.hr_resize_y, "hr_sampler_name": "" if sampler == "Use same sampler" else sampler,
        "hr_prompt": body.hr_prompt, "hr_negative_prompt": body.hr_negative_prompt,
    }
    if body.denoising_strength is not None:
        values["denoising_strength"] = body.denoising_strength
    return values


def _refuse_unsupported(body: Txt2ImgBody) -> None:
    """Fields that would change the image if honoured: refuse rather than silently ignore."""
    if body.script_name:
        raise RequestError(f"Script '{body.script_name}' not found")
    for name in body.alwayson_scripts or {}:
        if name.lower() != "controlnet":
            raise RequestError(f"always on script {name} not found (only controlnet is served)")
    if body.restore_faces:
        refuse_face_restoration("restore_faces")
    if body.subseed_strength:
        raise RequestError("subseed_strength (variation seeds) is not supported yet")


def _sampler(body: Txt2ImgBody, studio: "Studio") -> str:
    """A1111: sampler_name, else sampler_index; newer clients send the schedule separately."""
    name = body.sampler_name or body.sampler_index
    if body.scheduler and body.scheduler.lower() not in ("automatic", "uniform", ""):
        name = f"{name} {body.scheduler}"
    return resolve_sampler_name(name, studio.engine.samplers)


def _checkpoint(overrides: dict[str, Any] | None, studio: "Studio") -> str | None:
    title = (overrides or {}).get("sd_model_checkpoint")
    if title is None:
        return None
    return resolve_checkpoint(title, studio).title


def resolve_checkpoint(title: Any, studio: "Studio") -> ModelEntry:
    """A1111 clients send back the sd-models title ("name [hash]"), the bare name or the hash."""
    if not isinstance(title, str) or not title:
        raise RequestError("sd_model_checkpoint must be a model title (see /sdapi/v1/sd-models)")
    match = _TITLE_HASH.match(title.strip())
    name = match.group(1) if match else title.strip()
    loaded = studio.models.loaded
    if loaded is not None and name == loaded.hash:
        return loaded.entry
    return find_model(name, studio.settings)


# ---------------------------------------------------------------------------------------------
# ControlNet: sd-webui-controlnet's unit dicts -> ControlUnits (by field name).

_RESIZE_ALIASES = {  # older sd-webui-controlnet names
    "Inner Fit (Scale to Fit)": "Crop and Resize", "Scale to Fit (Inner Fit)": "Crop and Resize",
    "Outer Fit (Shrink to Fit)": "Resize and Fill", "Envelope (Outer Fit)": "Resize and Fill",
}


def controlnet_units(body: Txt2ImgBody, studio: "Studio", model_title: str | None) -> tuple[ControlUnit, ...]:
    """The enabled units of `alwayson_scripts.controlnet.args`; disabled ones are dropped.
    Errors name the unit by its position in `args`."""
    args = _controlnet_args(body.alwayson_scripts or {})
    if not args:
        return ()
    entries = controlnet_entries(studio, model_title)
    units = []
    for index, arg in enumerate(args):
        unit = to_control_unit(arg, index, entries)
        if unit is not None:
            unit.validate(index, has_source=isinstance(body, Img2ImgBody))
            units.append(unit)
    return tuple(units)


def _controlnet_args(scripts: dict[str, Any]) -> list[Any]:
    script = next((value for name, value in scripts.items() if name.lower() == "controlnet"), None)
    if script is None:
        return []
    args = script.get("args") if isinstance(script, dict) else None
    if not isinstance(args, list):
        raise RequestError('alwayson_scripts.controlnet must be {"args": [unit, ...]}')
    return args


def controlnet_entries(studio: "Studio", model_title: str | None) -> list[ControlNetEntry]:
    """The ControlNets for the model the request runs on: shipped beside it, then models/ControlNet.
    Nothing is loaded here (a listing must not load a model outside the engine's lock)."""
    loaded = studio.models.loaded
    if model_title is None and loaded is not None:
        entry = loaded.entry
    else:
        entry = find_model(model_title or studio.settings.model or DEFAULT_MODEL_TITLE, studio.settings)
    folder = entry.path if entry.kind in ("default", "diffusers") else None  # as LoadedModel.folder
    return discover_controlnets(studio.settings, folder)


def to_control_unit(arg: Any, index: int, entries: list[ControlNetEntry]) -> ControlUnit | None:
    where = f"ControlNet unit {index}"
    if arg is None:
        return None
    if not isinstance(arg, dict):
        raise RequestError(f"{where}: each item of alwayson_scripts.controlnet.args must be an object")
    try:
        parsed = ControlNetUnitArgs.model_validate(arg)
    except ValidationError as error:
        raise RequestError(f"{where}: {_error_message(error.errors())}") from error
    if not parsed.enabled:
        return None
    if parsed.advanced_weighting is not None:
        raise RequestError(f"{where}: advanced_weighting is not supported")
    model = _controlnet_model(parsed.model, entries, where)
    module = _module(parsed.module, where)
    values: dict[str, Any] = {
        "control_type": _control_type(model, module, where),
        "image": _unit_image(parsed, where),
        "module": module,
        "model": model.title if model is not None else None,
        "weight": parsed.weight,
        "guidance_start": parsed.guidance_start,
        "guidance_end": parsed.guidance_end,
        "control_mode": _choice(parsed.control_mode, CONTROL_MODES, {}, f"{where} control_mode"),
        "resize_mode": _choice(_latent_resize_as_just_resize(parsed.resize_mode), CONTROL_RESIZE_MODES,
                               _RESIZE_ALIASES, f"{where} resize_mode"),
        "pixel_perfect": parsed.pixel_perfect,
    }
    for name in ("threshold_a", "threshold_b"):  # negative means "the module's default"
        if getattr(parsed, name) >= 0:
            values[name] = getattr(parsed, name)
    return ControlUnit(**values)


def _controlnet_model(name: str | None, entries: list[ControlNetEntry], where: str) -> ControlNetEntry | None:
    """A title from /controlnet/model_list, with or without " [hash]", or a file name without extension."""
    if name is None or name.strip() in ("", "None", "none"):
        return None
    match = _TITLE_HASH.match(name.strip())
    wanted = (match.group(1) if match else name.strip()).lower()
    for entry in entries:
        if wanted in (entry.title.lower(), Path(entry.title).stem.lower()):
            return entry
    available = ", ".join(entry.title for entry in entries) or "none"
    raise RequestError(f"{where}: ControlNet model {name!r} not found; available: {available}")


def _module(name: str, where: str) -> str:
    for candidate in (name, name.lower()):
        if candidate in PREPROCESSORS:
            return candidate
    raise RequestError(f"{where}: unknown module {name!r}; choose one of: {', '.join(PREPROCESSORS)}")


def _control_type(model: ControlNetEntry | None, module: str, where: str) -> str:
    """From the model's title first (canny/scribble/pose), else from what the module feeds."""
    if model is not None and model.control_type != "other":
        return model.control_type
    fed = PREPROCESSORS[module].control_type
    if fed != "any":
        return fed
    if model is not None:
        return model.control_type
    raise RequestError(f"{where}: name a model (see /controlnet/model_list) or a module other than 'none', "
                       "so that the control type is known")


def _unit_image(parsed: ControlNetUnitArgs, where: str) -> Image.Image | None:
    image: Any = parsed.image if parsed.image is not None else parsed.input_image
    if isinstance(image, dict):
        if image.get("mask"):
            raise RequestError(f"{where}: ControlNet masks are not supported")
        image = image.get("image")
    if not image:
        return None  # img2img/inpaint: the unit uses the source image
    if not isinstance(image, str):
        raise RequestError(f"{where}: image must be a base64 image")
    return decode_image(image.strip(), f"{where} image")


def _choice(value: int | str, names: tuple[str, ...], aliases: dict[str, str], field: str) -> int:
    """An index, or one of the names (any case) sd-webui-controlnet shows."""
    if isinstance(value, int):
        if 0 <= value < len(names):
            return value
        raise RequestError(f"{field} must be 0 to {len(names) - 1} (got {value})")
    lowered = {name.lower(): i for i, name in enumerate(names)}
    name = aliases.get(value, value).lower()
    if name in lowered:
        return lowered[name]
    if value.isdigit():
        return _choice(int(value), names, aliases, field)
    raise RequestError(f"{field} must be 0 to {len(names) - 1} or one of: {', '.join(names)} (got {value!r})")


def _latent_resize_as_just_resize(value: int | str) -> int | str:
    """A1111's img2img resize_mode 3 ("Just Resize (Latent upscale)") is Just Resize for a control image."""
    return 0 if value == 3 else value


def controlnet_module_detail(module: str, annotators_dir: Path) -> dict[str, Any]:
    """sd-webui-controlnet's module_detail entry (model_free, threshold sliders), plus why a
    detector is unavailable when its weights are missing (null when it is available)."""
    spec = PREPROCESSORS[module]
    defaults = {field.name: field.default for field in fields(ControlUnit)}
    sliders = [{"name": label, "value": defaults[name]}
               for name, label in (("threshold_a", spec.threshold_a), ("threshold_b", spec.threshold_b)) if label]
    return {"model_free": spec.weights is None, "sliders": sliders,
            "unavailable": spec.unavailable_reason(annotators_dir)}


# ---------------------------------------------------------------------------------------------
# Responses.


def encode_png(image: Image.Image, text: str | None = None) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=storage.png_info(text, None) if text is not None else None)
    return base64.b64encode(buffer.getvalue()).decode()


def _encode_saved(saved: jobs.SavedImage) -> str:
    """A saved file is returned byte for byte (it also holds the `studio` recipe chunk)."""
    if saved.path is not None:
        return base64.b64encode(Path(saved.path).read_bytes()).decode()
    return base64.b64encode(saved.png_bytes()).decode()


def generation_info(result: jobs.JobResult, studio: "Studio", started: datetime, styles: list[str] | None = None) -> dict[str, Any]:
    """Processed.js() of A1111, for the fields that exist here."""
    request = result.request
    count = request.batch_size * request.n_iter
    loaded = studio.models.loaded
    model_hash = loaded.hash if loaded is not None and loaded.entry.title == request.model else None
    return {
        "prompt": request.prompt,
        "all_prompts": [request.prompt] * count,
        "negative_prompt": request.negative_prompt,
        "all_negative_prompts": [request.negative_prompt] * count,
        "seed": request.seed,
        "all_seeds": [request.seed + i for i in range(count)],
        "subseed": -1,
        "all_subseeds": [-1] * count,
        "subseed_strength": 0,
        "width": request.width,
        "height": request.height,
        "sampler_name": request.sampler_name,
        "cfg_scale": request.cfg_scale,
        "steps": request.steps,
        "batch_size": request.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": request.model,
        "sd_model_hash": model_hash,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": request.denoising_strength if request.mode != "txt2img" or request.enable_hr else None,
        "extra_generation_params": {},
        "index_of_first_image": 0,
        "infotexts": [saved.infotext for saved in result.images],
        "styles": styles or [],
        "job_timestamp": started.strftime("%Y%m%d%H%M%S"),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": f"studio-{__version__}",
        "interrupted": result.interrupted,
    }


def _echo_parameters(body: Txt2ImgBody) -> dict[str, Any]:
    """A1111 echoes the request it understood (images left out unless include_init_images)."""
    data = body.model_dump()
    if isinstance(body, Img2ImgBody) and not body.include_init_images:
        data["init_images"], data["mask"] = None, None
    return data


# ---------------------------------------------------------------------------------------------
# Progress preview: a cheap latent -> RGB approximation, or the VAE when asked.

# A1111's "Approx cheap" factors for SD 1.x/2.x latents (4 channels).
_APPROX_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))


def latent_preview(latents: Any, scale: int, vae: Any = None) -> Image.Image:
    import torch

    with torch.inference_mode():
        sample = latents[:1].detach().to("cpu", torch.float32)
        if vae is not None:
            factor = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
            decoded = vae.decode((sample / factor).to(vae.device, vae.dtype)).sample
            rgb = (decoded[0].float().cpu() + 1) / 2
        elif sample.shape[1] == 4:
            rgb = (torch.einsum("lxy,lr->rxy", sample[0], torch.tensor(_APPROX_RGB)) + 1) / 2
        else:
            channels = sample[0, :3]
            low, high = channels.min(), channels.max()
            rgb = (channels - low) / (high - low + 1e-6)
        array = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    if vae is None and scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


# ---------------------------------------------------------------------------------------------
# Errors: core exceptions -> 422 with {"detail": message} on these routes only.


def _error_message(items: Any) -> str:
    """FastAPI's / pydantic's error list as one line naming each field and what it got."""
    parts = []
    for item in items:
        if item.get("type") == "model_attributes_type" and tuple(item.get("loc", ())) == ("body",):
            parts.append("the body must be a JSON object sent with Content-Type: application/json")
            continue
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        got = f" (got {item['input']!r})" if "input" in item and not isinstance(item["input"], dict) else ""
        parts.append(f"{location}: {item.get('msg', 'invalid')}{got}")
    return "; ".join(parts)


class StudioRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return JSONResponse(status_code=422, content={
                    "detail": _error_message(error.errors()), "errors": jsonable_encoder(error.errors())})
            except (RequestError, UnknownSamplerError, StudioError) as error:
                return JSONResponse(status_code=422, content={"detail": str(error)})

        return route


def _auth_dependency(credentials: tuple[str, str]) -> Callable[..., None]:
    basic = HTTPBasic(description="the --api-auth user:password")
    user, password = credentials

    def check(given: HTTPBasicCredentials = Depends(basic)) -> None:
        user_ok = secrets.compare_digest(given.username.encode(), user.encode())
        password_ok = secrets.compare_digest(given.password.encode(), password.encode())
        if not (user_ok and password_ok):
            raise HTTPException(status_code=401, detail="Incorrect username or password",
                                headers={"WWW-Authenticate": "Basic"})

    return check


# ---------------------------------------------------------------------------------------------
# The routes.


class _Interrupts:
    """When /interrupt was last called, to report state.interrupted for the running job."""

    def __init__(self) -> None:
        self.at = float("-inf")


def build_api(studio: "Studio", settings: Settings) -> APIRouter:
    dependencies = [Depends(_auth_dependency(settings.api_auth))] if settings.api_auth else []
    router = APIRouter(route_class=StudioRoute, dependencies=dependencies, tags=["sdapi"])
    interrupts = _Interrupts()
    _generation_routes(router, studio)
    _model_routes(router, studio)
    _state_routes(router, studio, interrupts)
    _info_routes(router, studio, settings)
    _controlnet_routes(router, studio)
    _reproduce_routes(router, studio)
    extras_routes(router, studio)  # studio/web_extras.py: /extra-single-image, /extra-batch-images, /upscalers
    return router


def _generation_routes(router: APIRouter, studio: "Studio") -> None:
    def run(body: Txt2ImgBody) -> dict[str, Any]:
        request = to_request(body, studio)
        started = datetime.now()
        result = studio.submit(request, save=body.save_images)
        images = [_encode_saved(saved) for saved in result.images] if body.send_images else []
        info = generation_info(result, studio, started, body.styles)
        return {"images": images, "parameters": _echo_parameters(body), "info": json.dumps(info)}

    @router.post(f"{PREFIX}/txt2img", response_model=GenerationResponse)
    def txt2img(body: Txt2ImgBody) -> dict[str, Any]:
        return run(body)

    @router.post(f"{PREFIX}/img2img", response_model=GenerationResponse)
    def img2img(body: Img2ImgBody) -> dict[str, Any]:
        return run(body)


def _model_routes(router: APIRouter, studio: "Studio") -> None:
    @router.get(f"{PREFIX}/samplers", response_model=list[SamplerItem])
    def samplers() -> list[dict[str, Any]]:
        return [{"name": name, "aliases": list(spec.aliases), "options": dict(spec.kwargs)}
                for name, spec in studio.engine.samplers.items()]

    @router.get(f"{PREFIX}/sd-models", response_model=list[SDModelItem])
    def sd_models() -> list[dict[str, Any]]:
        return [model_item(entry, studio) for entry in studio.models.entries()]

    @router.post(f"{PREFIX}/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        studio.models.entries()  # discovery reads models/ afresh on every call

    @router.get(f"{PREFIX}/options")
    def get_options() -> dict[str, Any]:
        return {"sd_model_checkpoint": current_title(studio), "samples_format": "png",
                "outdir_txt2img_samples": str(storage.output_dir(studio.settings.outputs_dir, "txt2img").parent)}

    @router.post(f"{PREFIX}/options")
    def set_options(options: dict[str, Any]) -> None:
        """Only sd_model_checkpoint is honoured; other A1111 options are accepted and ignored."""
        if "sd_model_checkpoint" in options:
            switch_model(studio, options["sd_model_checkpoint"])


def model_item(entry: ModelEntry, studio: "Studio") -> dict[str, Any]:
    """A1111's shape; the hash is known for the loaded model (A1111 also hashes lazily)."""
    loaded = studio.models.loaded
    short = loaded.hash if loaded is not None and loaded.entry == entry else None
    config = entry.path.with_suffix(".yaml") if entry.kind in ("single_file", "pickle") else None
    return {
        "title": f"{entry.title} [{short}]" if short else entry.title,
        "model_name": Path(entry.title).stem.replace("/", "_") if entry.kind != "hub" else entry.title.replace("/", "_"),
        "hash": short,
        "sha256": None,
        "filename": entry.location,
        "config": str(config) if config is not None and config.is_file() else None,
    }


def current_title(studio: "Studio") -> str | None:
    loaded = studio.models.loaded
    return model_item(loaded.entry, studio)["title"] if loaded is not None else studio.settings.model


def switch_model(studio: "Studio", title: Any) -> None:
    """Load the model between generations; a failure raises and keeps the previous model."""
    entry = resolve_checkpoint(title, studio)
    studio.load_model(entry.title)  # takes the engine lock: never during a generation


def _state_routes(router: APIRouter, studio: "Studio", interrupts: _Interrupts) -> None:
    @router.get(f"{PREFIX}/progress", response_model=ProgressResponse)
    def progress(skip_current_image: bool = False, preview: Literal["approx", "vae"] = "approx") -> dict[str, Any]:
        """`preview=vae` decodes the preview with the model's VAE (slower, exact colours)."""
        return progress_report(studio, interrupts, skip_current_image, preview)

    @router.post(f"{PREFIX}/interrupt")
    def interrupt() -> dict[str, Any]:
        if studio.engine.busy:
            interrupts.at = time.monotonic()
        studio.engine.interrupt()
        return {}


def progress_report(studio: "Studio", interrupts: _Interrupts, skip_image: bool, preview: str) -> dict[str, Any]:
    engine = studio.engine
    busy, current = engine.busy, engine.progress
    started_wall = time.time() - (time.monotonic() - current.started) if current.started else time.time()
    state = {
        "skipped": False,
        "interrupted": busy and interrupts.at >= current.started,
        "stopping_generation": False,
        "job": "generate" if busy else "",
        "job_count": current.images if busy else 0,
        "job_timestamp": datetime.fromtimestamp(started_wall).strftime("%Y%m%d%H%M%S"),
        "job_no": current.image,
        "sampling_step": current.step,
        "sampling_steps": current.steps,
    }
    if not busy:
        return {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}
    image = None
    latents, loaded = current.latents, studio.models.loaded
    if latents is not None and loaded is not None and not skip_image:
        vae = loaded.pipe.vae if preview == "vae" else None
        image = encode_png(latent_preview(latents, int(loaded.pipe.vae_scale_factor), vae))
    return {"progress": current.fraction, "eta_relative": current.eta, "state": state,
            "current_image": image, "textinfo": None}


def _info_routes(router: APIRouter, studio: "Studio", settings: Settings) -> None:
    @router.post(f"{PREFIX}/png-info", response_model=PngInfoResponse)
    def png_info(body: PngInfoBody) -> dict[str, Any]:
        image = decode_image(body.image.strip(), "image")
        chunks = storage.read_png_text(image)
        text = chunks.pop(storage.PARAMETERS_KEY, "")
        parameters = infotext.parse_infotext(text) if text else {}
        return {"info": text, "items": chunks, "parameters": parameters}

    @router.get(f"{PREFIX}/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        return command_flags(settings)


def _controlnet_routes(router: APIRouter, studio: "Studio") -> None:
    """sd-webui-controlnet's listing routes (same paths and shapes, same auth as /sdapi/v1)."""

    @router.get("/controlnet/version", tags=["controlnet"])
    def controlnet_version() -> dict[str, Any]:
        return {"version": CONTROLNET_API_VERSION}

    @router.get("/controlnet/model_list", tags=["controlnet"])
    def controlnet_model_list(update: bool = True) -> dict[str, Any]:
        """The ControlNets for the loaded model (read afresh on every call; `update` is accepted)."""
        return {"model_list": [entry.title for entry in controlnet_entries(studio, None)]}

    @router.get("/controlnet/module_list", tags=["controlnet"])
    def controlnet_module_list(alias_names: bool = False) -> dict[str, Any]:
        """Preprocessor names (there are no aliases here, so `alias_names` changes nothing)."""
        annotators = studio.settings.models_dir / "annotators"
        return {"module_list": list(PREPROCESSORS),
                "module_detail": {name: controlnet_module_detail(name, annotators) for name in PREPROCESSORS}}


def _reproduce_routes(router: APIRouter, studio: "Studio") -> None:
    @router.post(f"{STUDIO_PREFIX}/reproduce", response_model=ReproduceResponse, tags=["studio"])
    def reproduce_image(body: ReproduceBody) -> dict[str, Any]:
        """Regenerate the exact image from one of our PNGs (its `studio` recipe chunk)."""
        image = decode_image(body.image.strip(), "image")
        started = datetime.now()
        done = reproduce.reproduce(studio, image)
        # `info` describes the one image returned; `parameters` is what was run (its whole batch).
        alone = done.request.replace(seed=done.image.seed, batch_size=1, n_iter=1)
        info = generation_info(jobs.JobResult(alone, [done.image], interrupted=False), studio, started)
        return {"images": [_encode_saved(done.image)], "parameters": done.request.to_dict(images=False),
                "info": json.dumps(info), "warnings": done.warnings}


def command_flags(settings: Settings) -> dict[str, Any]:
    """The settings under A1111's flag names where one exists; secrets only as set/unset."""
    return {
        "listen": settings.host == "0.0.0.0",
        "server_name": settings.host,
        "port": settings.port,
        "share": settings.share,
        "api": settings.api,
        "api_auth": "set" if settings.api_auth else None,
        "gradio_auth": "set" if settings.auth else None,
        "ckpt_dir": str(settings.models_dir / "Stable-diffusion"),
        "models_dir": str(settings.models_dir),
        "outputs_dir": str(settings.outputs_dir),
        "extensions_dir": str(settings.extensions_dir),
        "ckpt": settings.model,
        "device": settings.device,
        "dtype": settings.dtype,
        "allow_pickle": settings.allow_pickle,
        "safe_mode": settings.safe_mode,
        "disable_extensions": settings.safe_mode,
    }


def mount_api(app: FastAPI, studio: "Studio", settings: Settings) -> None:
    """Add the routes to the (already running) Gradio app, ahead of Gradio's own routes."""
    before = len(app.router.routes)
    app.include_router(build_api(studio, settings))
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    app.openapi_schema = None  # rebuilt on the next /openapi.json with our routes in it
