"""Request and response bodies with A1111's field names and defaults (pydantic)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _not_bool(value: Any) -> Any:
    """JSON true/false are not numbers (pydantic would read true as 1 step)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]


class Txt2ImgBody(BaseModel):
    """Unknown fields are ignored, as A1111 ignores them."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: Int = -1
    subseed: Int = -1
    subseed_strength: Float = 0.0
    seed_resize_from_h: Int = -1
    seed_resize_from_w: Int = -1
    sampler_name: str | None = None
    sampler_index: str = "Euler"
    scheduler: str | None = None
    batch_size: Int = 1
    n_iter: Int = 1
    steps: Int = 50
    cfg_scale: Float = 7.0
    width: Int | None = Field(default=None, description="A1111: 512. Here: the model's native size when left out.")
    height: Int | None = Field(default=None, description="A1111: 512. Here: the model's native size when left out.")
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
    refiner_checkpoint: str | None = Field(default=None, description="SDXL refiner: a model title from "
                                             "/sdapi/v1/sd-models; null or \"None\": no refiner")
    refiner_switch_at: Float = Field(default=0.8, description="the fraction of the steps the base model runs")
    restore_faces: bool | None = Field(default=None, description="restore faces with the face_restoration_model option "
                                       "(see /sdapi/v1/face-restorers); 422 naming the file to place when absent")
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    script_name: str | None = None
    script_args: list[Any] = []
    send_images: bool = True
    # The studio's: a preset from presets/ ("lcm", "turbo", ...) fills the fields the body leaves unset.
    preset: str | None = None
    s_min_uncond: Float = 0.0  # A1111's "Negative Guidance minimum sigma"
    eta: Float | None = Field(default=None, description="DDIM's / ancestral samplers' noise (0..1); null: the "
                              "eta_ddim / eta_ancestral option's")
    save_images: bool = False
    alwayson_scripts: dict[str, Any] | None = None


class Img2ImgBody(Txt2ImgBody):
    init_images: list[str] | None = None
    resize_mode: Int = 0
    denoising_strength: Float = 0.75
    mask: str | None = None
    mask_blur: Int | None = None
    mask_blur_x: Int = 4
    mask_blur_y: Int = 4
    inpainting_fill: Int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: Int = 0
    inpainting_mask_invert: Int = 0
    include_init_images: bool = False
    outpaint_left: int = Field(default=0, description="outpainting: pixels added on the left (also right/up/down)")
    outpaint_right: int = 0
    outpaint_up: int = 0
    outpaint_down: int = 0
    outpaint_fill: int = Field(default=2, description="0: stretch the edge pixels, 1: noise, 2: fill (A1111's "
                               "blurred colours of the surroundings, the default)")


class ControlNetUnitArgs(BaseModel):
    """One item of `alwayson_scripts.controlnet.args`: sd-webui-controlnet's ControlNetUnit fields."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    enabled: bool = True
    module: str = "none"
    model: str | None = Field(default="None", description='a /controlnet/model_list title, with or without " [hash]"; "None": the first of the type')
    weight: Float = 1.0
    image: str | dict[str, Any] | None = Field(default=None, description="base64 image, or {\"image\": base64, \"mask\": null}")
    input_image: str | None = Field(default=None, description="older clients' name for `image`")
    mask: str | None = Field(default=None, description="base64 mask (white: repaint) for inpaint_only")
    mask_image: str | None = Field(default=None, description="sd-webui-controlnet's other name for `mask`")
    resize_mode: Int | str = Field(default=1, description="0/1/2 or Just Resize / Crop and Resize / Resize and Fill")
    processor_res: Int = Field(default=-1, description="accepted and ignored")
    threshold_a: Float = Field(default=-1, description="negative: the module's default")
    threshold_b: Float = -1
    guidance_start: Float = 0.0
    guidance_end: Float = 1.0
    control_mode: Int | str = Field(default=0, description="0/1/2 or Balanced / My prompt is more important / ControlNet is more important")
    pixel_perfect: bool = False
    advanced_weighting: list[Float] | None = None


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
    # The caller's place in the studio's queue (position, ahead, wait, eta, queued, size, text); None: no job.
    queue: dict[str, Any] | None = None


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
