"""Automatic evaluation of the default model with a classifier that does not use the model.

    python -m studio.default_model.evaluate [--model DIR] [--quick] [--output FILE.json]

Prompt following (foreground colour, shape, background, position) over held-out prompts for the
five studio samplers at 20 steps, ControlNet adherence (edge F1 with vs without control, pose limb
coverage vs baseline), img2img / inpainting sanity and the VAE's reconstructions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
from PIL import Image

from . import CONTROLNET_DIRS, WEIGHTS_DIR
from .dataset import (
    SHAPE_COLORS,
    SHAPES,
    Sample,
    article,
    control_image,
    make_sample,
)
from .reading import (
    EVAL_SEED,
    TRAIN_SAMPLE,
    PromptSpec,
    border_rgb,
    classify,
    eval_prompts,
    foreground_mask,
    position_ok,
    training_captions,
)

STEPS = 20
CFG = 7.0
CONTACT_SAMPLER = "Euler a"  # the studio's default sampler (as in A1111), so the sheet shows what a user first sees
SAMPLER_NAMES: tuple[str, ...] = ("Euler", "Euler a", "DPM++ 2M Karras", "DDIM", "UniPC")


# ---------------------------------------------------------------- generation helpers

def make_scheduler(name: str, config: Any) -> Any:
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
        UniPCMultistepScheduler,
    )
    table: dict[str, tuple[Any, dict[str, Any]]] = {
        "Euler": (EulerDiscreteScheduler, {}),
        "Euler a": (EulerAncestralDiscreteScheduler, {}),
        "DPM++ 2M Karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
        "DDIM": (DDIMScheduler, {}),
        "UniPC": (UniPCMultistepScheduler, {}),
        "LCM": (LCMScheduler, {"original_inference_steps": 1000}),  # as the studio's registry
    }
    cls, kwargs = table[name]
    return cls.from_config(config, **kwargs)


def generators(n: int, base: int = 0) -> list[Any]:
    import torch
    return [torch.Generator().manual_seed(base + i) for i in range(n)]


def generate(pipe: Any, prompts: list[str], sampler: str = "Euler", cfg: float = CFG, seed: int = 0,
             batch: int = 64, steps: int = STEPS, **kwargs: Any) -> list[Image.Image]:
    """Images for ``prompts`` (seed + i for prompt i) with a fresh scheduler, in batches."""
    original = pipe.scheduler
    base_config = original.config
    images: list[Image.Image] = []
    try:
        for start in range(0, len(prompts), batch):
            chunk = prompts[start:start + batch]
            pipe.scheduler = make_scheduler(sampler, base_config)
            extra = {k: (v[start:start + batch] if isinstance(v, list) else v) for k, v in kwargs.items()}
            out = pipe(prompt=chunk, num_inference_steps=steps, guidance_scale=cfg, height=64, width=64,
                       generator=generators(len(chunk), seed + start), **extra)
            images.extend(out.images)
    finally:
        pipe.scheduler = original
    return images


def score_prompts(specs: Sequence[PromptSpec], images: Sequence[Image.Image]) -> dict[str, float]:
    readings = [classify(im) for im in images]
    with_pos = [(s, r) for s, r in zip(specs, readings) if s.position]
    return {
        "color": float(np.mean([r.color == s.color for s, r in zip(specs, readings)])),
        "shape": float(np.mean([r.shape == s.shape for s, r in zip(specs, readings)])),
        "background": float(np.mean([r.background == s.background for s, r in zip(specs, readings)])),
        "position": float(np.mean([position_ok(s.position, r) for s, r in with_pos])) if with_pos else float("nan"),
    }


def prompt_accuracy(pipe: Any, specs: Sequence[PromptSpec], sampler: str, cfg: float = CFG,
                    steps: int = STEPS) -> dict[str, float]:
    images = generate(pipe, [s.prompt for s in specs], sampler, cfg, steps=steps)
    return score_prompts(specs, images)


def quick_prompt_accuracy(pipe: Any, n: int = 24) -> dict[str, float]:
    """The training curve's probe: n held-out prompts, Euler, 20 steps, CFG 7."""
    pipe.set_progress_bar_config(disable=True)
    return prompt_accuracy(pipe, eval_prompts(n, seen=training_captions(TRAIN_SAMPLE[0], 2000)), "Euler")


# ---------------------------------------------------------------- VAE

def held_out_samples(n: int, figure: Optional[bool] = False, seed: int = EVAL_SEED) -> list[Sample]:
    return [make_sample(seed, i, figure=figure) for i in range(n)]


def vae_accuracy(vae: Any, n: int = 200) -> dict[str, float]:
    """Classifier agreement of VAE reconstructions with the true scene (colour, shape, background)."""
    import torch
    samples = held_out_samples(n)
    x = torch.from_numpy(np.stack([np.asarray(s.image, np.float32) / 127.5 - 1 for s in samples])).permute(0, 3, 1, 2)
    with torch.no_grad():
        rec = torch.cat([vae.decode(vae.encode(x[i:i + 50]).latent_dist.mode()).sample for i in range(0, n, 50)])
    arr = ((rec.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    readings = [classify(Image.fromarray(a)) for a in arr]
    truth = [classify(s.image) for s in samples]
    return {
        "color": float(np.mean([r.color == s.color for s, r in zip(samples, readings)])),
        "shape": float(np.mean([r.shape == s.kind for s, r in zip(samples, readings)])),
        "background": float(np.mean([r.background == s.background for s, r in zip(samples, readings)])),
        "classifier_on_originals_shape": float(np.mean([t.shape == s.kind for s, t in zip(samples, truth)])),
    }


# ---------------------------------------------------------------- ControlNet adherence

def _binary(image: Image.Image) -> np.ndarray:
    return (np.asarray(image.convert("L")) > 127).astype(np.uint8)


def edge_f1(control: Image.Image, output: Image.Image, tolerance: int = 1) -> float:
    """F1 between the control's (skeletonised) lines and Canny(output), matching within ``tolerance`` px."""
    from skimage.morphology import skeletonize

    from studio.control.edges import canny
    ctrl = skeletonize(_binary(control).astype(bool)).astype(np.uint8)
    out = _binary(canny(output))
    if ctrl.sum() == 0 or out.sum() == 0:
        return 0.0
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    precision = float((out & cv2.dilate(ctrl, kernel)).sum()) / out.sum()
    recall = float((ctrl & cv2.dilate(out, kernel)).sum()) / ctrl.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def pose_coverage(keypoints: Sequence[Any], image: Image.Image) -> float:
    """Share of points along the body limbs (face excluded) that land on the generated figure."""
    from studio.control.pose import LIMBS
    arr = np.asarray(image.convert("RGB"), dtype=float)
    mask = foreground_mask(arr, border_rgb(arr), threshold=40.0)
    hits: list[bool] = []
    for a, b in LIMBS:
        if max(a, b) >= 14:
            continue
        for t in np.linspace(0, 1, 7):
            x = keypoints[a][0] + t * (keypoints[b][0] - keypoints[a][0])
            y = keypoints[a][1] + t * (keypoints[b][1] - keypoints[a][1])
            xi, yi = int(np.clip(round(x), 0, 63)), int(np.clip(round(y), 0, 63))
            hits.append(bool(mask[max(0, yi - 1):yi + 2, max(0, xi - 1):xi + 2].any()))
    return float(np.mean(hits))


def controlnet_adherence(pipe: Any, controlnets: dict[str, Any], n: int = 24) -> dict[str, dict[str, float]]:
    """Per kind: the score with the ControlNet vs the same prompts and seeds without it."""
    from diffusers import StableDiffusionControlNetPipeline
    results: dict[str, dict[str, float]] = {}
    for kind, controlnet in controlnets.items():
        samples = held_out_samples(n, figure=True if kind == "pose" else None, seed=EVAL_SEED + 1)
        controls = [control_image(s, kind, EVAL_SEED, i) for i, s in enumerate(samples)]
        prompts = [s.caption for s in samples]
        cpipe = StableDiffusionControlNetPipeline.from_pipe(pipe, controlnet=controlnet)
        cpipe.set_progress_bar_config(disable=True)
        with_control = generate(cpipe, prompts, image=controls)
        without = generate(pipe, prompts)
        if kind == "pose":
            score = lambda s, c, im: pose_coverage(s.keypoints, im)  # noqa: E731
        else:
            score = lambda s, c, im: edge_f1(c, im)  # noqa: E731
        results[kind] = {
            "with_control": float(np.mean([score(s, c, im) for s, c, im in zip(samples, controls, with_control)])),
            "without_control": float(np.mean([score(s, c, im) for s, c, im in zip(samples, controls, without)])),
        }
        results[kind]["ratio"] = results[kind]["with_control"] / max(1e-6, results[kind]["without_control"])
    return results


# ---------------------------------------------------------------- img2img and inpainting

def img2img_sanity(pipe: Any, n: int = 16, strength: float = 0.3) -> dict[str, float]:
    """At strength 0.3 the output keeps the input scene's colour, shape and background."""
    from diffusers import StableDiffusionImg2ImgPipeline
    i2i = StableDiffusionImg2ImgPipeline.from_pipe(pipe)
    i2i.set_progress_bar_config(disable=True)
    samples = held_out_samples(n, seed=EVAL_SEED + 2)
    images = [s.image for s in samples]
    out = generate(i2i, [s.caption for s in samples], image=images, strength=strength)
    readings = [classify(im) for im in out]
    keep = [r.color == s.color and r.shape == s.kind and r.background == s.background
            for s, r in zip(samples, readings)]
    return {"kept_all_three": float(np.mean(keep)), "strength": strength}


def inpaint_sanity(pipe: Any, n: int = 16) -> dict[str, float]:
    """Masking the shape and prompting a new colour repaints it in that colour."""
    from diffusers import StableDiffusionInpaintPipeline
    inp = StableDiffusionInpaintPipeline.from_pipe(pipe)
    inp.set_progress_bar_config(disable=True)
    samples = held_out_samples(n, seed=EVAL_SEED + 3)
    new_colors = [SHAPE_COLORS[(SHAPE_COLORS.index(s.color) + 2 + i % 3) % len(SHAPE_COLORS)]
                  for i, s in enumerate(samples)]
    new_colors = [c if c != s.background else SHAPE_COLORS[(SHAPE_COLORS.index(c) + 1) % 6]
                  for c, s in zip(new_colors, samples)]
    masks = []
    for s in samples:
        m = np.zeros((64, 64), np.uint8)
        cv2.fillPoly(m, [np.round(np.asarray(s.outline)).astype(np.int32)], 255)
        masks.append(Image.fromarray(cv2.dilate(m, np.ones((5, 5), np.uint8))))
    prompts = [f"{article(c)} {c} {s.kind} on a {s.background} background" for c, s in zip(new_colors, samples)]
    out = generate(inp, prompts, image=[s.image for s in samples], mask_image=masks)
    readings = [classify(im) for im in out]
    return {"new_color": float(np.mean([r.color == c for r, c in zip(readings, new_colors)]))}


# ---------------------------------------------------------------- loading, report, CLI

def load(model: Path = WEIGHTS_DIR) -> tuple[Any, dict[str, Any]]:
    import torch
    from diffusers import ControlNetModel, StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(model, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    controlnets = {kind: ControlNetModel.from_pretrained(model / f"controlnet-{kind}", torch_dtype=torch.float32)
                   for kind in CONTROLNET_DIRS if (model / f"controlnet-{kind}").exists()}
    return pipe, controlnets


def evaluate(model: Path = WEIGHTS_DIR, quick: bool = False, cfgs: Sequence[float] = (CFG,)) -> dict[str, Any]:
    start = time.time()
    pipe, controlnets = load(model)
    specs = eval_prompts(24 if quick else 60)
    samplers = ("Euler", "DPM++ 2M Karras") if quick else SAMPLER_NAMES
    report: dict[str, Any] = {"model": str(model), "quick": quick, "prompts": len(specs), "steps": STEPS}
    report["prompt_following"] = {f"{name} @ CFG {cfg:g}": prompt_accuracy(pipe, specs, name, cfg)
                                  for cfg in cfgs for name in samplers}
    report["vae_reconstruction"] = vae_accuracy(pipe.vae, 60 if quick else 200)
    report["controlnet"] = controlnet_adherence(pipe, controlnets, 8 if quick else 24)
    report["img2img"] = img2img_sanity(pipe, 8 if quick else 16)
    report["inpaint"] = inpaint_sanity(pipe, 8 if quick else 16)
    report["seconds"] = round(time.time() - start, 1)
    return report


def contact_sheet(model: Path, path: Path) -> None:
    """Generations for colour x shape prompts on several backgrounds, plus control -> output pairs."""
    pipe, controlnets = load(model)
    rows: list[list[Image.Image]] = []
    bgs = ("white", "blue", "black", "yellow", "gray", "green")
    for r, shape in enumerate(SHAPES):
        prompts = [f"{article(c)} {c} {shape} on a {bgs[(j + r) % len(bgs)] if bgs[(j + r) % len(bgs)] != c else 'gray'} background"
                   for j, c in enumerate(SHAPE_COLORS)]
        rows.append(generate(pipe, prompts, CONTACT_SAMPLER, seed=100 * r))
    from diffusers import StableDiffusionControlNetPipeline
    for kind, controlnet in controlnets.items():
        samples = held_out_samples(3, figure=True if kind == "pose" else None, seed=EVAL_SEED + 5)
        controls = [control_image(s, kind, EVAL_SEED, i) for i, s in enumerate(samples)]
        cpipe = StableDiffusionControlNetPipeline.from_pipe(pipe, controlnet=controlnet)
        cpipe.set_progress_bar_config(disable=True)
        outs = generate(cpipe, [s.caption for s in samples], CONTACT_SAMPLER, image=controls)
        rows.append([im for pair in zip(controls, outs) for im in pair])
    scale = 2
    sheet = Image.new("RGB", (6 * 64 * scale, len(rows) * 64 * scale), "white")
    for y, row in enumerate(rows):
        for x, im in enumerate(row):
            sheet.paste(im.resize((64 * scale, 64 * scale), Image.NEAREST), (x * 64 * scale, y * 64 * scale))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--quick", action="store_true", help="a small subset (as the test suite runs)")
    parser.add_argument("--cfg", type=float, nargs="+", default=[CFG])
    parser.add_argument("--output", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--contact-sheet", type=Path, default=None, help="also write a contact sheet PNG")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers.utils import logging as dlogging
    torch.set_num_threads(args.threads)
    dlogging.set_verbosity_error()
    report = evaluate(args.model, args.quick, args.cfg)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    if args.contact_sheet:
        contact_sheet(args.model, args.contact_sheet)


if __name__ == "__main__":
    main()
