"""sd-webui-controlnet's routes (same paths and shapes, same auth as /sdapi/v1): version, model and
module lists, control types, settings, and detect (a preprocessor run on images)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from studio.control.pose import POSE_INFO_KEY
from studio.images import decode_image, encode_image
from studio.request import RequestError
from studio.service.admission import admit_detection
from studio.web.controlnet_units import module_detail

if TYPE_CHECKING:
    from studio.service.container import Services

CONTROLNET_API_VERSION = 2  # sd-webui-controlnet's external_code.get_api_version()


class DetectBody(BaseModel):
    """sd-webui-controlnet's /controlnet/detect body."""

    model_config = ConfigDict(extra="ignore")

    controlnet_module: str = "none"
    # webuiapi's controlnet_detect sends `controlnet_images`: accepted as the same field
    controlnet_input_images: list[str] = Field(default_factory=list, description="base64 images",
                                               validation_alias=AliasChoices("controlnet_input_images", "controlnet_images"))
    controlnet_processor_res: int = Field(default=512, description="the shorter side the image is scaled to first")
    controlnet_threshold_a: float = Field(default=-1, description="negative: the module's default")
    controlnet_threshold_b: float = -1
    controlnet_masks: list[str] | None = Field(default=None, description="base64 masks (inpaint_only), one per image")
    low_vram: bool = Field(default=False, description="accepted and ignored")


def routes(router: APIRouter, services: "Services") -> None:
    control = services.control

    @router.get("/controlnet/version", tags=["controlnet"])
    def controlnet_version() -> dict[str, Any]:
        return {"version": CONTROLNET_API_VERSION}

    @router.get("/controlnet/model_list", tags=["controlnet"])
    def controlnet_model_list(update: bool = True) -> dict[str, Any]:
        """The ControlNets for the loaded model (read afresh on every call; `update` is accepted).
        `model_detail` (ours) says which fit the loaded model and why not."""
        fits = control.fit()
        return {"model_list": [entry.title for entry in control.entries()],
                "model_detail": {title: {"fits": reason is None, "reason": reason} for title, reason in fits.items()}}

    @router.get("/controlnet/module_list", tags=["controlnet"])
    def controlnet_module_list(alias_names: bool = False) -> dict[str, Any]:
        """Preprocessor names (there are no aliases here, so `alias_names` changes nothing)."""
        annotators = control.annotator_dirs
        modules = control.preprocessors()
        return {"module_list": list(modules),
                "module_detail": {name: module_detail(spec, annotators) for name, spec in modules.items()}}

    @router.get("/controlnet/control_types", tags=["controlnet"])
    def controlnet_control_types() -> dict[str, Any]:
        """Each control type (sd-webui-controlnet's names: All, Canny, Depth, ...) with its modules,
        the loaded model's ControlNets of that type, and the defaults the UI picks."""
        return {"control_types": control.control_types()}

    @router.get("/controlnet/settings", tags=["controlnet"])
    def controlnet_settings() -> dict[str, Any]:
        """How many units a request may use (`control_net_unit_count` in /sdapi/v1/options; the flag's by default)."""
        units = services.options.control_units() if services.options is not None else control.settings.control_net_unit_count
        return {"control_net_unit_count": units}

    @router.post("/controlnet/detect", tags=["controlnet"])
    def controlnet_detect(body: DetectBody) -> dict[str, Any]:
        """Run a preprocessor on each image: {"images": [base64 PNG], "info": "Success"}; openpose adds
        "poses": one OpenPose JSON per image (keypoints as fractions of canvas_width/canvas_height)."""
        modules = control.preprocessors()
        module = body.controlnet_module if body.controlnet_module in modules else body.controlnet_module.lower()
        if module not in modules:
            raise RequestError(f"Module not available: {body.controlnet_module[:100]!r}; "
                               f"choose one of: {', '.join(modules)}")
        admit_detection(len(body.controlnet_input_images), body.controlnet_processor_res)
        masks = body.controlnet_masks or []
        if masks and len(masks) != len(body.controlnet_input_images):
            raise RequestError("give one controlnet_masks item per controlnet_input_images item")
        spec = modules[module]
        a = body.controlnet_threshold_a if body.controlnet_threshold_a >= 0 else spec.range_a[2]
        b = body.controlnet_threshold_b if body.controlnet_threshold_b >= 0 else spec.range_b[2]
        results = []
        for index, text in enumerate(body.controlnet_input_images):
            image = decode_image(text, f"controlnet_input_images[{index}]")
            mask = decode_image(masks[index], f"controlnet_masks[{index}]") if masks else None
            try:
                results.append(control.detect(module, image, body.controlnet_processor_res, a, b, mask))
            except ValueError as error:
                raise RequestError(f"{module}: {error}") from error
        answer: dict[str, Any] = {"images": [encode_image(image).split(",", 1)[1] for image in results], "info": "Success"}
        poses = [image.info[POSE_INFO_KEY] for image in results if POSE_INFO_KEY in image.info]
        if poses:  # sd-webui-controlnet: openpose modules add the people they found, one dict per image
            answer["poses"] = poses
        return answer
