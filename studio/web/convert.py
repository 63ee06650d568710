"""A1111 request bodies -> the one GenerationRequest, by field name.

Fields that would change the image if honoured but are not built yet are refused, never ignored.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.images import decode_image, peek_size
from studio.request import GenerationRequest, RequestError
from studio.service.admission import admit_inputs
from studio.web.checkpoints import resolve_checkpoint
from studio.web.controlnet_units import controlnet_units
from studio.web.schemas import Img2ImgBody, Txt2ImgBody

if TYPE_CHECKING:
    from studio.service.container import Services


def to_request(body: Txt2ImgBody, services: "Services") -> GenerationRequest:
    refuse_unsupported(body)
    check_backend_override(body.override_settings, services)
    admit_inputs([(name, peek_size(text, name)) for name, text in body_images(body)])  # before any decode
    values: dict[str, Any] = {
        "prompt": body.prompt,
        "negative_prompt": body.negative_prompt,
        "sampler_name": sampler(body, services),
        "scheduler": body.scheduler or "Automatic",  # A1111's "Schedule type" (label or API name)
        "steps": body.steps,
        "cfg_scale": body.cfg_scale,
        "width": body.width,
        "height": body.height,
        "seed": body.seed,
        "subseed": body.subseed,
        "subseed_strength": body.subseed_strength,
        "seed_resize_from_w": body.seed_resize_from_w,
        "seed_resize_from_h": body.seed_resize_from_h,
        "batch_size": body.batch_size,
        "n_iter": body.n_iter,
        "model": checkpoint(body.override_settings, services),
        "cache_interval": cache_interval(body.override_settings),
        "vae": vae_override(body.override_settings),
        "clip_skip": clip_skip(body.override_settings),
        "token_merging_ratio": (body.override_settings or {}).get("token_merging_ratio", 0.0),  # A1111's option
        "s_min_uncond": (body.override_settings or {}).get("s_min_uncond", body.s_min_uncond),
        "eta": body.eta,
        "styles": tuple(body.styles or ()),  # expanded (and unknown names refused) by the generation service
        "refiner_checkpoint": refiner_checkpoint(body.refiner_checkpoint, services),
        "refiner_switch_at": body.refiner_switch_at,
        # A1111's "Restore faces" with its options' restorer and CodeFormer weight (override_settings may name them)
        "restore_faces": bool(body.restore_faces),
        "face_restoration_model": (body.override_settings or {}).get("face_restoration_model", ""),
        "code_former_weight": (body.override_settings or {}).get("code_former_weight", 0.5),
    }
    if isinstance(body, Img2ImgBody):
        values.update(img2img_values(body))
    else:
        values.update(hires_values(body))
    values.update(preset_values(body))
    values["controlnet_units"] = controlnet_units(body.alwayson_scripts, services.control, values["model"],
                                                 has_source=isinstance(body, Img2ImgBody))
    return GenerationRequest(**values).validate()


def body_images(body: Txt2ImgBody) -> list[tuple[str, str]]:
    """Every base64 image the body brings (init image, mask, ControlNet units'), by name, undecoded."""
    found: list[tuple[str, str]] = []
    if isinstance(body, Img2ImgBody):
        found += [(f"init_images[{i}]", text) for i, text in enumerate((body.init_images or [])[:1]) if isinstance(text, str)]
        if isinstance(body.mask, str) and body.mask:
            found.append(("mask", body.mask))
    for key, script in (body.alwayson_scripts or {}).items():
        args = script.get("args") if isinstance(script, dict) else None
        if key.lower() != "controlnet" or not isinstance(args, list):
            continue
        for index, unit in enumerate(args):
            image = (unit.get("image") or unit.get("input_image")) if isinstance(unit, dict) else None
            image = image.get("image") if isinstance(image, dict) else image
            if isinstance(image, str) and image:
                found.append((f"ControlNet unit {index} image", image.strip()))
    return found


def preset_values(body: Txt2ImgBody) -> dict[str, Any]:
    """The named preset's fields the body did not set itself (an explicit field wins, as on the CLI)."""
    if not body.preset:
        return {}
    from studio.service.presets import load_presets

    presets = load_presets()
    if body.preset not in presets:
        raise RequestError(f"unknown preset {body.preset[:100]!r}; available: {', '.join(presets)}")
    given = set(body.model_fields_set) | ({"sampler_name"} if "sampler_index" in body.model_fields_set else set())
    return {key: value for key, value in presets[body.preset].items() if key not in given}


def cache_interval(override_settings: dict[str, Any] | None) -> Any:
    """override_settings["cache_interval"]: step caching, 1 (off) .. 5; validated with the request."""
    value = (override_settings or {}).get("cache_interval", 1)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def img2img_values(body: Img2ImgBody) -> dict[str, Any]:
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
    sampler_name = body.hr_sampler_name or ""
    values: dict[str, Any] = {
        "enable_hr": body.enable_hr, "hr_scale": body.hr_scale, "hr_upscaler": body.hr_upscaler or "Latent",
        "hr_second_pass_steps": body.hr_second_pass_steps, "hr_resize_x": body.hr_resize_x,
        "hr_resize_y": body.hr_resize_y, "hr_sampler_name": "" if sampler_name == "Use same sampler" else sampler_name,
        "hr_prompt": body.hr_prompt, "hr_negative_prompt": body.hr_negative_prompt,
    }
    if body.denoising_strength is not None:
        values["denoising_strength"] = body.denoising_strength
    return values


def clip_skip(override_settings: dict[str, Any] | None) -> Any:
    """override_settings["CLIP_stop_at_last_layers"] (A1111's option name): 1 .. 12, validated with the request."""
    value = (override_settings or {}).get("CLIP_stop_at_last_layers", 1)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def refuse_unsupported(body: Txt2ImgBody) -> None:
    """Fields that would change the image if honoured: refuse rather than silently ignore."""
    for name in body.alwayson_scripts or {}:
        if name.lower() != "controlnet":
            raise RequestError(f"always on script {name[:100]} not found (only controlnet is served)")


def sampler(body: Txt2ImgBody, services: "Services") -> str:
    """A1111: sampler_name, else sampler_index (the schedule type is its own field, `scheduler`)."""
    return services.models.resolve_sampler(body.sampler_name or body.sampler_index)


def vae_override(overrides: dict[str, Any] | None) -> str | None:
    """override_settings.sd_vae: a models/VAE name or "Automatic" (the engine resolves it)."""
    name = (overrides or {}).get("sd_vae")
    if name is not None and not isinstance(name, str):
        raise RequestError("override_settings.sd_vae must be a VAE name (see /sdapi/v1/sd-vae) or \"Automatic\"")
    return name


def refiner_checkpoint(title: str | None, services: "Services") -> str | None:
    """A1111's refiner_checkpoint: a sd-models title ("name [hash]") or name; null/""/"None": none."""
    if title is None or not title.strip() or title.strip() == "None":
        return None
    try:
        return resolve_checkpoint(title, services).title
    except RequestError as error:
        raise RequestError(f"refiner_checkpoint: {error}".replace("sd_model_checkpoint must", "it must")) from None


def check_backend_override(overrides: dict[str, Any] | None, services: "Services") -> None:
    """override_settings.backend: the backend is a server-wide option (a conversion and its memory), so a request may
    repeat the current choice (clients that copy /options do) but not switch it; never ignored silently."""
    if not overrides or "backend" not in overrides:
        return
    from studio.service.option_keys import BACKENDS

    value = overrides["backend"]
    if value not in BACKENDS:
        raise RequestError(f"override_settings.backend must be one of {', '.join(BACKENDS)}")
    current = services.options.get("backend") if services.options is not None else services.settings.backend
    if value != current:
        raise RequestError(f"override_settings.backend cannot switch one request to {value} (the server runs "
                           f"{current}): set the backend option in Settings or through the options API")


def checkpoint(overrides: dict[str, Any] | None, services: "Services") -> str | None:
    title = (overrides or {}).get("sd_model_checkpoint")
    if title is None:
        return None
    return resolve_checkpoint(title, services).title
