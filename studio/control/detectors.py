"""Detectors that need weight files (sd-webui-controlnet's depth, lineart, softedge, normal, mlsd,
seg, openpose modules), run by controlnet-aux's own code (Depth-Anything: transformers', see
depth_anything.py) from a file the user placed under models/ControlNet/annotators/ (or
models/annotators/), under the name lllyasviel/Annotators gives it.

Nothing is downloaded: a detector without its file is listed as unavailable with the file to place.
controlnet-aux loads every file with torch.load, which is weights-only from torch 2.6 on.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from studio.control import pose
from studio.control.aux import import_aux


def _run(module: str, detector: str, **call: Any) -> Callable[..., Image.Image]:
    """A preprocessor (image, a, b, weights file) -> control image running `module.detector`,
    built from the file's folder (controlnet-aux's from_pretrained reads a folder without download)."""
    def run(image: Image.Image, a: float, b: float, weights: Path) -> Image.Image:
        cls = getattr(import_aux(f"controlnet_aux.{module}"), detector)
        built = cls.from_pretrained(str(weights.parent), filename=weights.name, **_extra(detector, weights))
        size = max(image.size)
        values = {key: (a if value == "a" else b if value == "b" else value) for key, value in call.items()}
        out = built(image.convert("RGB"), detect_resolution=size, image_resolution=size, output_type="pil", **values)
        return out.convert("RGB").resize(image.size)

    return run


def _extra(detector: str, weights: Path) -> dict[str, Any]:
    # LineartDetector always loads both of its models: the coarse one is the same file here.
    return {"coarse_filename": weights.name} if detector == "LineartDetector" else {}


def _openpose(image: Image.Image, a: float, b: float, weights: Path) -> Image.Image:
    """OpenPose body keypoints from a photo (controlnet_aux), with body_pose_model.pth. The people
    found ride along as sd-webui-controlnet's pose JSON in the image's info (pose.POSE_INFO_KEY)."""
    open_pose = import_aux("controlnet_aux.open_pose")
    util = import_aux("controlnet_aux.util")
    detector = open_pose.OpenposeDetector(import_aux("controlnet_aux.open_pose.body").Body(str(weights)))
    pixels = util.resize_image(util.HWC3(np.asarray(image.convert("RGB"))), max(image.size))
    height, width = pixels.shape[:2]
    people = detector.detect_poses(pixels)
    canvas = open_pose.draw_poses(people, height, width, draw_body=True, draw_hand=False, draw_face=False)
    drawn = Image.fromarray(util.HWC3(canvas)).resize(image.size, Image.Resampling.BILINEAR)
    drawn.info[pose.POSE_INFO_KEY] = pose.people_as_openpose_json(people, image.width, image.height)
    return drawn


def _depth_anything(image: Image.Image, a: float, b: float, weights: Path) -> Image.Image:
    """transformers' Depth-Anything (depth_anything.py), imported on first use: the web and UI layers
    list this registry without loading torch or transformers."""
    return importlib.import_module("studio.control.depth_anything").depth_anything(image, a, b, weights)


def _segment(image: Image.Image, a: float, b: float, folder: Path) -> Image.Image:
    """ADE20K segmentation by transformers' OneFormer or UperNet (segment.py), imported on first use."""
    return importlib.import_module("studio.control.segment").segment(image, a, b, folder)


def _absent(image: Image.Image, a: float, b: float, weights: Path) -> Image.Image:
    raise ValueError("this detector's code is not part of this install")


NO_CODE = "the installed controlnet-aux has no {} detector: this module cannot run here even with its weights"

# name -> PreprocessorSpec fields (studio/control/preprocessors.py builds the specs).
DETECTORS: dict[str, dict[str, Any]] = {
    "openpose": dict(run=_openpose, control_type="pose", weights="body_pose_model.pth"),
    "depth_midas": dict(run=_run("midas", "MidasDetector"), control_type="depth",
                        weights="dpt_hybrid-midas-501f0c75.pt"),
    # transformers' DepthAnythingForDepthEstimation (controlnet-aux 0.0.10 has no Depth-Anything)
    "depth_anything": dict(run=_depth_anything, control_type="depth", weights="depth_anything_vitl14.pth",
                           folder="depth-anything"),
    "lineart_realistic": dict(run=_run("lineart", "LineartDetector"), control_type="lineart", weights="sk_model.pth"),
    "lineart_coarse": dict(run=_run("lineart", "LineartDetector", coarse=True), control_type="lineart",
                           weights="sk_model2.pth"),
    "lineart_anime": dict(run=_run("lineart_anime", "LineartAnimeDetector"), control_type="lineart",
                          weights="netG.pth"),
    "softedge_hed": dict(run=_run("hed", "HEDdetector"), control_type="softedge", weights="ControlNetHED.pth"),
    "softedge_pidinet": dict(run=_run("pidi", "PidiNetDetector"), control_type="softedge",
                             weights="table5_pidinet.pth"),
    "normal_bae": dict(run=_run("normalbae", "NormalBaeDetector"), control_type="normal", weights="scannet.pt"),
    "mlsd": dict(run=_run("mlsd", "MLSDdetector", thr_v="a", thr_d="b"), control_type="mlsd",
                 weights="mlsd_large_512_fp32.pth", threshold_a="MLSD Value Threshold",
                 threshold_b="MLSD Distance Threshold", range_a=(0.01, 2.0, 0.1), range_b=(0.01, 20.0, 0.1)),
    # transformers' OneFormer / UperNet from a transformers folder (segment.py): sd-webui-controlnet's
    # detectron2 / mmseg files are not readable here. UperNet (ConvNeXt or Swin) stands in for UniFormer.
    "seg_ofade20k": dict(run=_segment, control_type="seg", weights="250_16_swin_l_oneformer_ade20k_160k.pth",
                         folder="oneformer-ade20k", reads_file=False),
    "seg_ufade20k": dict(run=_segment, control_type="seg", weights="upernet_global_small.pth",
                         folder="upernet-ade20k", reads_file=False),
    "inpaint_only+lama": dict(run=_absent, control_type="inpaint", weights="ControlNetLama.pth",
                              missing=NO_CODE.format("LaMa") + " (ControlNetLama.pth); use inpaint_only: the same "
                              "inpaint ControlNet, without LaMa's pre-fill of the masked area"),
}
