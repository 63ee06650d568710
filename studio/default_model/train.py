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
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import components as C
from .dataset import control_image, make_sample
from .loop import (
    CAPTION_DROPOUT,
    CONTROL_PROMPT_DROPOUT,
    DATA_SEED,
    HYPER,
    KL_WEIGHT,
    MIN_SNR_GAMMA,
    STAGE_SHARE,
    STAGES,
    Anneal,
    Stage,
    autocast,
    batch_indices,
    ema_update,
    lr_at,
    run_budget,
    to_tensor,
)
from .weights_io import (
    choose_base_weights,
    export_weights,
    import_weights,
    load_base,
    load_frozen_vae,
    noise_scheduler,
    tokenizer_for,
)


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
        unet.load_state_dict(state["unet"])
        text.load_state_dict(state["text"])
        ema_unet.load_state_dict(state["ema_unet"])
        ema_text.load_state_dict(state["ema_text"])
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
