"""Train the embedded default model on CPU, resumably, within a time budget.

    python -m studio.default_model.train --out runs/default --stage vae --minutes 12
    python -m studio.default_model.train --out runs/default --stage unet --minutes 60
    python -m studio.default_model.train --out runs/default --stage controlnet-canny --minutes 9
    python -m studio.default_model.train --out runs/default --stage export
    python -m studio.default_model.train --out runs/default --stage import   # continue from shipped weights

Each stage keeps ``state.pt`` (weights, EMA, optimizer, step, minutes spent) and ``log.jsonl`` in
``<out>/<stage>/``; running a stage again continues where it stopped. ``--stage all`` runs the
stages in order, splitting ``--minutes`` between them. Stage ``export`` writes the fp16 folder
(with ``training.json``: minutes and steps per stage); stage ``import`` seeds a run directory from
such a folder so training can continue from the shipped weights when the run directory is gone.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import WEIGHTS_DIR
from . import components as C
from .dataset import control_image, make_sample

STAGES: tuple[str, ...] = ("vae", "unet", "controlnet-canny", "controlnet-scribble", "controlnet-pose")
# Share of --minutes per stage for --stage all.
STAGE_SHARE: dict[str, float] = {"vae": 0.13, "unet": 0.6, "controlnet-canny": 0.09,
                                 "controlnet-scribble": 0.09, "controlnet-pose": 0.09}
DATA_SEED = 1234
CHECKPOINT_MINUTES = 5.0
CURVE_MINUTES = 6.0


@dataclass(frozen=True)
class Hyper:
    batch: int
    lr: float
    warmup: int
    ema: float


HYPER: dict[str, Hyper] = {
    "vae": Hyper(batch=16, lr=1e-3, warmup=100, ema=0.0),
    "unet": Hyper(batch=32, lr=5e-4, warmup=200, ema=0.999),
    "controlnet": Hyper(batch=16, lr=1e-3, warmup=50, ema=0.0),
}
CAPTION_DROPOUT = 0.1
CONTROL_PROMPT_DROPOUT = 0.5
MIN_SNR_GAMMA = 5.0
KL_WEIGHT = 1e-6


# ---------------------------------------------------------------- tensors from the dataset

def to_tensor(images: list[Any]) -> torch.Tensor:
    """PIL images -> float tensor in [0, 1], NCHW."""
    return torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])).permute(0, 3, 1, 2)


def batch_indices(step: int, batch: int) -> range:
    return range(step * batch, (step + 1) * batch)


# ---------------------------------------------------------------- checkpoint + budget loop

class Stage:
    """Paths and persistent state of one training stage."""

    def __init__(self, out: Path, name: str) -> None:
        self.dir = out / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / "state.pt"

    def load(self) -> Optional[dict[str, Any]]:
        return torch.load(self.state_path, weights_only=False) if self.state_path.exists() else None

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)

    def log(self, record: dict[str, Any], name: str = "log.jsonl") -> None:
        with open(self.dir / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def run_budget(stage: Stage, state: dict[str, Any], minutes: float, step_fn: Callable[[int], float],
               save_fn: Callable[[], None], every: Optional[Callable[[], None]] = None,
               every_minutes: float = CURVE_MINUTES) -> None:
    """Call ``step_fn(step)`` until ``minutes`` of wall time pass; checkpoint regularly."""
    start = time.monotonic()
    base_minutes = state["minutes"]
    last_save = last_every = start
    losses: list[float] = []
    bar = tqdm(total=round(minutes * 60), desc=stage.dir.name, unit="s", dynamic_ncols=True)
    while (now := time.monotonic()) - start < minutes * 60:
        losses.append(step_fn(state["step"]))
        state["step"] += 1
        now = time.monotonic()
        state["minutes"] = base_minutes + (now - start) / 60
        bar.n = min(round(now - start), bar.total)
        bar.set_postfix(step=state["step"], loss=f"{np.mean(losses[-50:]):.4f}")
        if state["step"] % 50 == 0:
            stage.log({"step": state["step"], "minutes": round(state["minutes"], 2),
                       "loss": float(np.mean(losses[-50:]))})
        if every is not None and now - last_every >= every_minutes * 60:
            every()
            last_every = time.monotonic()
        if now - last_save >= CHECKPOINT_MINUTES * 60:
            save_fn()
            last_save = time.monotonic()
    bar.close()
    save_fn()


def lr_at(step: int, hyper: Hyper, scale: float = 1.0, warmup_from: int = 0) -> float:
    """Learning rate; the warmup restarts at ``warmup_from`` (an import, where AdamW starts fresh)."""
    return hyper.lr * scale * min(1.0, (step - warmup_from + 1) / hyper.warmup)


class Anneal:
    """LR multiplier: 1.0, or (with ``enabled``) a linear decay to ``floor`` over this run's budget."""

    def __init__(self, minutes: float, enabled: bool, floor: float = 0.05) -> None:
        self.start, self.seconds, self.enabled, self.floor = time.monotonic(), minutes * 60, enabled, floor

    def __call__(self) -> float:
        if not self.enabled:
            return 1.0
        done = min(1.0, (time.monotonic() - self.start) / self.seconds)
        return 1.0 - (1.0 - self.floor) * done


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)


def autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


# ---------------------------------------------------------------- VAE

def train_vae(out: Path, minutes: float) -> None:
    stage, hyper = Stage(out, "vae"), HYPER["vae"]
    vae = C.build_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=hyper.lr, weight_decay=0.0)
    state = stage.load() or {"step": 0, "minutes": 0.0}
    if "model" in state:
        vae.load_state_dict(state["model"])
    if "opt" in state:
        opt.load_state_dict(state["opt"])

    def step_fn(step: int) -> float:
        x = to_tensor([make_sample(DATA_SEED, i).image for i in batch_indices(step, hyper.batch)]) * 2 - 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hyper, warmup_from=state.get("warmup_from", 0))
        with autocast():
            posterior = vae.encode(x).latent_dist
            rec = vae.decode(posterior.sample()).sample.float()
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + KL_WEIGHT * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        return float(loss)

    def save_fn() -> None:
        state.update(model=vae.state_dict(), opt=opt.state_dict())
        stage.save(state)
        finalize_vae(vae, out)

    run_budget(stage, state, minutes, step_fn, save_fn)


@torch.no_grad()
def finalize_vae(vae: torch.nn.Module, out: Path, n: int = 512) -> None:
    """Set scaling_factor = 1/std of the latents and save the VAE for the next stages."""
    vae.eval()
    x = to_tensor([make_sample(DATA_SEED + 1, i).image for i in range(n)]) * 2 - 1
    z = torch.cat([vae.encode(x[i:i + 64]).latent_dist.sample() for i in range(0, n, 64)])
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    vae.save_pretrained(out / "vae" / "model")
    vae.train()


# ---------------------------------------------------------------- shared pieces of diffusion training

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


def tokenize(tokenizer: Any, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


@torch.no_grad()
def encode_latents(vae: Any, images: torch.Tensor) -> torch.Tensor:
    with autocast():
        z = vae.encode(images * 2 - 1).latent_dist.sample()
    return z.float() * vae.config.scaling_factor


def diffusion_loss(sched: Any, predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """v-prediction loss with min-SNR(+1) weighting, gamma = MIN_SNR_GAMMA."""
    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator)
    t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=generator)
    noisy = sched.add_noise(latents, noise, t)
    target = sched.get_velocity(latents, noise, t)
    with autocast():
        pred = predict(noisy, t).float()
    ac = sched.alphas_cumprod[t]
    snr = ac / (1 - ac)
    weight = torch.clamp(snr + 1, max=MIN_SNR_GAMMA) / (snr + 1)
    per = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    return (per * weight).mean()


# ---------------------------------------------------------------- UNet + text encoder

def train_unet(out: Path, minutes: float, anneal: bool = False) -> None:
    stage, hyper = Stage(out, "unet"), HYPER["unet"]
    tokenizer = tokenizer_for(out)
    vae = load_frozen_vae(out)
    torch.manual_seed(0)
    unet, text = C.build_unet(), C.build_text_encoder(tokenizer)
    ema_unet, ema_text = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(text).requires_grad_(False)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=hyper.lr, weight_decay=1e-2)
    state = stage.load() or {"step": 0, "minutes": 0.0}
    if "unet" in state:
        unet.load_state_dict(state["unet"]); text.load_state_dict(state["text"])
        ema_unet.load_state_dict(state["ema_unet"]); ema_text.load_state_dict(state["ema_text"])
    if "opt" in state:
        opt.load_state_dict(state["opt"])
    sched = noise_scheduler()
    lr_scale = Anneal(minutes, anneal)

    def step_fn(step: int) -> float:
        samples = [make_sample(DATA_SEED, i) for i in batch_indices(step, hyper.batch)]
        rng = np.random.default_rng([DATA_SEED, step, 1])
        captions = ["" if rng.random() < CAPTION_DROPOUT else s.caption for s in samples]
        latents = encode_latents(vae, to_tensor([s.image for s in samples]))
        ids = tokenize(tokenizer, captions)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hyper, lr_scale(), state.get("warmup_from", 0))

        def predict(noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return unet(noisy, t, text(ids)[0]).sample

        loss = diffusion_loss(sched, predict, latents, torch.Generator().manual_seed(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema_update(ema_unet, unet, step, hyper.ema)
        ema_update(ema_text, text, step, hyper.ema)
        return float(loss)

    def save_fn() -> None:
        state.update(unet=unet.state_dict(), text=text.state_dict(), ema_unet=ema_unet.state_dict(),
                     ema_text=ema_text.state_dict(), opt=opt.state_dict())
        stage.save(state)

    def curve() -> None:
        from .evaluate import quick_prompt_accuracy
        pipe = C.assemble_pipeline(vae, ema_text, tokenizer, ema_unet)
        scores = quick_prompt_accuracy(pipe)
        stage.log({"step": state["step"], "minutes": round(state["minutes"], 2), **scores}, "curve.jsonl")
        tqdm.write(f"curve @ {state['minutes']:.1f} min: {scores}")

    run_budget(stage, state, minutes, step_fn, save_fn, every=curve)
    curve()


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
    unet.load_state_dict(state[f"{prefix}unet"]); text.load_state_dict(state[f"{prefix}text"])
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

def control_samples(kind: str, indices: range) -> list[Any]:
    return [make_sample(DATA_SEED + 7, i, figure=True if kind == "pose" else None) for i in indices]


def train_controlnet(out: Path, kind: str, minutes: float, anneal: bool = False) -> None:
    stage, hyper = Stage(out, f"controlnet-{kind}"), HYPER["controlnet"]
    vae, text, tokenizer, unet = load_base(out)
    controlnet = C.build_controlnet(unet).train()
    opt = torch.optim.AdamW(controlnet.parameters(), lr=hyper.lr, weight_decay=0.0)
    state = stage.load() or {"step": 0, "minutes": 0.0}
    if "model" in state:
        controlnet.load_state_dict(state["model"])
    if "opt" in state:
        opt.load_state_dict(state["opt"])
    sched = noise_scheduler()
    lr_scale = Anneal(minutes, anneal)

    def step_fn(step: int) -> float:
        indices = batch_indices(step, hyper.batch)
        samples = control_samples(kind, indices)
        rng = np.random.default_rng([DATA_SEED, step, 2])
        captions = ["" if rng.random() < CONTROL_PROMPT_DROPOUT else s.caption for s in samples]
        cond = to_tensor([control_image(s, kind, DATA_SEED, i) for s, i in zip(samples, indices)])
        latents = encode_latents(vae, to_tensor([s.image for s in samples]))
        with torch.no_grad(), autocast():
            hidden = text(tokenize(tokenizer, captions))[0]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hyper, lr_scale(), state.get("warmup_from", 0))

        def predict(noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            down, mid = controlnet(noisy, t, encoder_hidden_states=hidden, controlnet_cond=cond, return_dict=False)
            return unet(noisy, t, hidden, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample

        loss = diffusion_loss(sched, predict, latents, torch.Generator().manual_seed(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        opt.step()
        return float(loss)

    def save_fn() -> None:
        state.update(model=controlnet.state_dict(), opt=opt.state_dict())
        stage.save(state)

    run_budget(stage, state, minutes, step_fn, save_fn)


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

def run_stage(out: Path, name: str, minutes: float, anneal: bool = False) -> None:
    if name == "vae":
        train_vae(out, minutes)
    elif name == "unet":
        train_unet(out, minutes, anneal)
        choose_base_weights(out)
    elif name.startswith("controlnet-"):
        train_controlnet(out, name.removeprefix("controlnet-"), minutes, anneal)
    elif name == "export":
        export_weights(out)
    elif name == "import":
        import_weights(out)
    else:
        raise ValueError(f"unknown stage {name!r}")


def free_cores() -> int:
    load = os.getloadavg()[0]
    return max(1, (os.cpu_count() or 1) - math.ceil(load - 0.5))


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    parser.add_argument("--stage", default="all", choices=(*STAGES, "export", "import", "all"))
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget for this run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: from the free cores)")
    parser.add_argument("--anneal", action="store_true",
                        help="decay the learning rate linearly to 5%% over this run (a final polish)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads or free_cores())
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "all":
        for name in STAGES:
            run_stage(args.out, name, args.minutes * STAGE_SHARE[name], args.anneal)
        export_weights(args.out)
    else:
        run_stage(args.out, args.stage, args.minutes, args.anneal)


if __name__ == "__main__":
    main()
