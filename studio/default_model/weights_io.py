"""Training weights in and out: the base a ControlNet stage trains against, the ControlNets, the
exported fp16 folder with its training record, and seeding a run from the shipped weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch

from . import WEIGHTS_DIR
from . import components as C
from .loop import STAGES, Stage


def load_base(out: Path, weights: Optional[str] = None) -> tuple[Any, Any, Any, Any]:
    """(vae, text_encoder, tokenizer, unet) of the UNet stage, frozen.

    ``weights`` is "ema" or "raw"; by default the choice recorded by ``choose_base_weights``.
    """
    tokenizer = tokenizer_for(out)
    vae = load_frozen_vae(out)
    state = Stage(out, "unet").load()
    if state is None:
        raise FileNotFoundError("train the UNet first")
    choice_file = out / "unet" / "choice.json"
    if weights is None:
        weights = json.loads(choice_file.read_text())["weights"] if choice_file.exists() else "ema"
    prefix = "ema_" if weights == "ema" else ""
    unet, text = C.build_unet(), C.build_text_encoder(tokenizer)
    unet.load_state_dict(state[f"{prefix}unet"])
    text.load_state_dict(state[f"{prefix}text"])
    for m in (unet, text):
        m.eval().requires_grad_(False)
    return vae, text, tokenizer, unet


def choose_base_weights(out: Path) -> str:
    """Compare the EMA and the raw UNet/text weights on the curve probe; record the better one."""
    from .evaluate import quick_prompt_accuracy
    scores = {}
    for weights in ("ema", "raw"):
        vae, text, tokenizer, unet = load_base(out, weights)
        scores[weights] = quick_prompt_accuracy(C.assemble_pipeline(vae, text, tokenizer, unet))
    total = {w: s["color"] + s["shape"] + s["background"] for w, s in scores.items()}
    choice = max(total, key=total.get)
    (out / "unet" / "choice.json").write_text(json.dumps({"weights": choice, "scores": scores}, indent=2))
    print(f"base weights: {choice} {scores}")
    return choice


# ---------------------------------------------------------------- ControlNets

def load_controlnet(out: Path, kind: str, unet: Any) -> Any:
    controlnet = C.build_controlnet(unet)
    state = Stage(out, f"controlnet-{kind}").load()
    if state is not None:
        controlnet.load_state_dict(state["model"])
    return controlnet.eval()


# ---------------------------------------------------------------- export

def export_weights(out: Path, dest: Path = WEIGHTS_DIR) -> int:
    """Write the trained pipeline and ControlNets (fp16) to ``dest``; returns bytes written."""
    from .export import export
    vae, text, tokenizer, unet = load_base(out)
    pipe = C.assemble_pipeline(vae, text, tokenizer, unet)
    controlnets = {kind: load_controlnet(out, kind, unet) for kind in C.CONTROL_KINDS}
    summary = {
        "parameters": C.component_sizes([("unet", unet), ("vae", vae), ("text_encoder", text)]
                                        + [(f"controlnet-{k}", m) for k, m in controlnets.items()]),
        "minutes": {name: round(s["minutes"], 1) for name in STAGES if (s := Stage(out, name).load())},
        "steps": {name: s["step"] for name in STAGES if (s := Stage(out, name).load())},
    }
    size = export(pipe, controlnets, dest)
    summary["bytes"] = size
    (out / "export.json").write_text(json.dumps(summary, indent=2))
    training = {"minutes": summary["minutes"], "steps": summary["steps"]}
    (dest / TRAINING_RECORD).write_text(json.dumps(training, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return size


# ---------------------------------------------------------------- import (continue from exported weights)

TRAINING_RECORD = "training.json"


def import_weights(out: Path, source: Path = WEIGHTS_DIR) -> None:
    """Seed run directory ``out`` from an exported folder, so every stage can continue training.

    The exported (fp16) weights become both the raw and the EMA weights, upcast to fp32. The
    optimizer state is not exported, so AdamW starts fresh with its warmup restarted
    (``warmup_from``); minutes and steps continue from the folder's ``training.json``.
    """
    import shutil

    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel

    record_path = source / TRAINING_RECORD
    if not record_path.exists():
        raise FileNotFoundError(f"{record_path} is missing: cannot tell how long the weights were trained")
    record = json.loads(record_path.read_text())

    def counters(name: str) -> dict[str, Any]:
        step = int(record["steps"][name])
        return {"step": step, "minutes": float(record["minutes"][name]), "warmup_from": step, "imported_from": str(source)}

    def fp32(model_cls: Any, sub: str) -> dict[str, torch.Tensor]:
        return {k: v.float() for k, v in model_cls.from_pretrained(source / sub).state_dict().items()}

    shutil.copytree(source / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    vae = AutoencoderKL.from_pretrained(source / "vae", torch_dtype=torch.float32)
    vae.save_pretrained(out / "vae" / "model")
    Stage(out, "vae").save({**counters("vae"), "model": vae.state_dict()})
    unet, text = fp32(UNet2DConditionModel, "unet"), fp32(CLIPTextModel, "text_encoder")
    Stage(out, "unet").save({**counters("unet"), "unet": unet, "text": text, "ema_unet": unet, "ema_text": text})
    for kind in C.CONTROL_KINDS:
        name = f"controlnet-{kind}"
        Stage(out, name).save({**counters(name), "model": fp32(ControlNetModel, name)})
    print(f"imported {source} into {out}: {record['minutes']}")


# ---------------------------------------------------------------- CLI


def noise_scheduler() -> Any:
    from diffusers import DDPMScheduler
    cfg = {k: v for k, v in C.SCHEDULER_CONFIG.items() if k not in ("timestep_spacing", "set_alpha_to_one")}
    return DDPMScheduler(**cfg)



def load_frozen_vae(out: Path) -> Any:
    from diffusers import AutoencoderKL
    path = out / "vae" / "model"
    if not path.exists():
        raise FileNotFoundError(f"train the VAE first: {path} is missing")
    vae = AutoencoderKL.from_pretrained(path).eval()
    vae.requires_grad_(False)
    return vae



def tokenizer_for(out: Path) -> Any:
    directory = out / "tokenizer"
    if (directory / "tokenizer_config.json").exists():
        from transformers import CLIPTokenizer
        return CLIPTokenizer.from_pretrained(directory)
    return C.write_tokenizer(directory)
