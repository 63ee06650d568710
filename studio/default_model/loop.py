"""The training loop's pieces: tensors from the dataset, time-budgeted resumable stages, learning
rate warm-up and annealing, EMA, autocast."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

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

