"""DPM-Solver (Lu et al. 2022) as k-diffusion's "DPM fast" and "DPM adaptive", in the generator
form of `ksamplers.py`. Both work in t = -log(sigma) between the schedule's highest and lowest
non-zero sigma (A1111 hands them only that range, and `n` = the step count for DPM fast).
"""
from __future__ import annotations

import math

import torch

from studio.generation.ksamplers import Noise, Sampler, ancestral_step


def _sigma(t: float) -> float:
    return math.exp(-t)


def _range(s: list[float]) -> tuple[float, float]:
    positive = [value for value in s if value > 0]
    return -math.log(max(positive)), -math.log(min(positive))


class _Solver:
    """One DPM-Solver step of order 1-3 from (x, t) to t_next; `eps` caches the evaluation at t."""

    def __init__(self) -> None:
        self.cache: dict[str, torch.Tensor] = {}
        self.x: torch.Tensor | None = None  # the point evaluated at t, as the pipeline had it

    def eps(self, key: str, x: torch.Tensor, t: float) -> Sampler:
        if key not in self.cache:
            den, x_seen, _ = yield x, _sigma(t)
            self.cache[key] = (x_seen - den) / _sigma(t)
            if key == "eps":
                self.x = x_seen
        return self.cache[key]

    def step(self, order: int, x: torch.Tensor, t: float, t_next: float, r1: float | None = None) -> Sampler:
        h = t_next - t
        eps = yield from self.eps("eps", x, t)
        x = self.x if self.x is not None else x
        if order == 1:
            return x - _sigma(t_next) * math.expm1(h) * eps
        r1 = r1 if r1 is not None else (0.5 if order == 2 else 1 / 3)
        s1 = t + r1 * h
        u1 = x - _sigma(s1) * math.expm1(r1 * h) * eps
        eps_r1 = yield from self.eps("eps_r1", u1, s1)
        if order == 2:
            return x - _sigma(t_next) * math.expm1(h) * eps - _sigma(t_next) / (2 * r1) * math.expm1(h) * (eps_r1 - eps)
        r2 = 2 / 3
        s2 = t + r2 * h
        u2 = (x - _sigma(s2) * math.expm1(r2 * h) * eps
              - _sigma(s2) * (r2 / r1) * (math.expm1(r2 * h) / (r2 * h) - 1) * (eps_r1 - eps))
        eps_r2 = yield from self.eps("eps_r2", u2, s2)
        return x - _sigma(t_next) * math.expm1(h) * eps - _sigma(t_next) / r2 * (math.expm1(h) / h - 1) * (eps_r2 - eps)


def _ancestral_target(t: float, t_next: float, t_end: float, eta: float) -> tuple[float, float]:
    if not eta:
        return t_next, 0.0
    down, _ = ancestral_step(_sigma(t), _sigma(t_next), eta)
    target = min(t_end, -math.log(down)) if down > 0 else t_end
    return target, max(_sigma(t_next) ** 2 - _sigma(target) ** 2, 0.0) ** 0.5


def dpm_fast(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    """Fixed steps of order 3 (then 2, 1) spending exactly n = len(s) - 1 evaluations."""
    t_start, t_end = _range(s)
    nfe = len(s) - 1
    m = nfe // 3 + 1
    ts = torch.linspace(t_start, t_end, m + 1, dtype=torch.float64).tolist()
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        target, up = _ancestral_target(ts[i], ts[i + 1], t_end, ctx.eta)
        x = yield from _Solver().step(order, x, ts[i], target)
        if up:
            x = x + up * ctx.randn(x)
    return x


def dpm_adaptive(s: list[float], x: torch.Tensor, ctx: Noise, rtol: float = 0.05, atol: float = 0.0078,
                 h_init: float = 0.05, accept_safety: float = 0.81) -> Sampler:
    """DPM-Solver-23 with k-diffusion's integral step-size control. The pipeline runs a fixed number
    of evaluations (`ctx.budget`): when only one step's worth is left, that step goes to the end."""
    t_start, t_end = _range(s)
    order_for_pid = 1.5 if ctx.eta else 3
    h, errors, left = h_init, None, ctx.budget
    current, x_prev = t_start, None
    solver = _Solver()
    while current < t_end - 1e-5:
        last = left <= 5  # the next attempt must finish: 3 evaluations, 2 when t is cached
        t = t_end if last else min(t_end, current + h)
        target, up = _ancestral_target(current, t, t_end, ctx.eta)
        used_before = len(solver.cache)
        x_low = yield from solver.step(2, x, current, target, r1=1 / 3)
        x_high = yield from solver.step(3, x, current, target)
        left -= len(solver.cache) - used_before
        x = solver.x if solver.x is not None else x
        x_prev = x if x_prev is None else x_prev
        delta = torch.maximum(torch.tensor(atol), rtol * torch.maximum(x_low.abs(), x_prev.abs()))
        error = float(torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5)
        inverse = 1 / (error + 1e-8)
        errors = errors or [inverse] * 3
        errors[0] = inverse
        factor = 1 + math.atan(errors[0] ** (1 / order_for_pid) - 1)
        accept = factor >= accept_safety or last
        h *= factor
        if accept:
            errors[2], errors[1] = errors[1], errors[0]
            x_prev, x = x_low, x_high + (up * ctx.randn(x) if up else 0)
            current, solver = t, _Solver()
        else:  # the evaluation at `current` still holds
            solver.cache = {"eps": solver.cache["eps"]}
    return x

