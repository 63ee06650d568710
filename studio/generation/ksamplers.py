"""k-diffusion's samplers (and A1111's Restart, PLMS, DDIM CFG++) as small pure generator functions.

A sampler is written as k-diffusion writes it, except that instead of calling the model it yields
`(x, sigma)` and is sent back `(denoised, x, denoised_uncond)`: the denoised prediction at that
point, the point the pipeline actually evaluated (inpainting may have blended it), and for CFG++
the unconditional prediction. `KScheduler` drives these one model evaluation per pipeline step.
Formulas follow k-diffusion 0.1.1 (`sampling.py`) and A1111 1.10; noise comes from `ctx`.
"""
from __future__ import annotations

import math
from typing import Any, Generator, Protocol

import torch

Sampler = Generator[tuple[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor, Any], torch.Tensor]


class Noise(Protocol):
    eta: float
    budget: int

    def randn(self, x: torch.Tensor) -> torch.Tensor: ...

    def brownian(self, x: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor: ...


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up): where an ancestral step lands and how much noise it adds back."""
    if not eta:
        return sigma_to, 0.0
    up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - up ** 2) ** 0.5, up


def _d(x: torch.Tensor, sigma: float, denoised: torch.Tensor) -> torch.Tensor:
    return (x - denoised) / sigma


def euler(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        x = x + _d(x, s[i], den) * (s[i + 1] - s[i])
    return x


def euler_ancestral(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        down, up = ancestral_step(s[i], s[i + 1], ctx.eta)
        x = x + _d(x, s[i], den) * (down - s[i])
        if s[i + 1] > 0 and up > 0:  # eta 0 (DDIM's default) draws no noise: the generator stays as Euler's
            x = x + ctx.randn(x) * up
    return x


def _heun_step(x: torch.Tensor, sigma: float, sigma_next: float, second_order: bool = True) -> Sampler:
    den, x, _ = yield x, sigma
    d = _d(x, sigma, den)
    if sigma_next == 0 or not second_order:
        return x + d * (sigma_next - sigma)
    x_2 = x + d * (sigma_next - sigma)
    den_2, x_2, _ = yield x_2, sigma_next
    return x + (d + _d(x_2, sigma_next, den_2)) / 2 * (sigma_next - sigma)


def heun(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    for i in range(len(s) - 1):
        x = yield from _heun_step(x, s[i], s[i + 1])
    return x


def _dpm2_step(x: torch.Tensor, sigma: float, target: float, den: torch.Tensor) -> Sampler:
    d = _d(x, sigma, den)
    if target == 0:
        return x + d * (target - sigma)
    mid = math.exp((math.log(sigma) + math.log(target)) / 2)
    x_2 = x + d * (mid - sigma)
    den_2, x_2, _ = yield x_2, mid
    return x + _d(x_2, mid, den_2) * (target - sigma)


def dpm_2(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        x = yield from _dpm2_step(x, s[i], s[i + 1], den)
    return x


def dpm_2_ancestral(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        down, up = ancestral_step(s[i], s[i + 1], ctx.eta)
        x = yield from _dpm2_step(x, s[i], down, den)
        if down != 0:
            x = x + ctx.randn(x) * up
    return x


def _lms_coefficient(order: int, t: list[float], i: int, j: int) -> float:
    from scipy import integrate

    def fn(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]


def lms(s: list[float], x: torch.Tensor, ctx: Noise, order: int = 4) -> Sampler:
    ds: list[torch.Tensor] = []
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        ds = [*ds, _d(x, s[i], den)][-order:]
        current = min(i + 1, order)
        coefficients = [_lms_coefficient(current, s, i, j) for j in range(current)]
        x = x + sum(c * d for c, d in zip(coefficients, reversed(ds)))
    return x


def dpmpp_2s_ancestral(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        down, up = ancestral_step(s[i], s[i + 1], ctx.eta)
        if down == 0:
            x = x + _d(x, s[i], den) * (down - s[i])
        else:
            t, t_next = -math.log(s[i]), -math.log(down)
            h = t_next - t
            mid = math.exp(-(t + h / 2))
            x_2 = (mid / s[i]) * x - math.expm1(-h / 2) * den
            den_2, x_2, _ = yield x_2, mid
            x = (down / s[i]) * x - math.expm1(-h) * den_2
        if s[i + 1] > 0:
            x = x + ctx.randn(x) * up
    return x


def dpmpp_sde(s: list[float], x: torch.Tensor, ctx: Noise, r: float = 0.5) -> Sampler:
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        if s[i + 1] == 0:
            x = x + _d(x, s[i], den) * (s[i + 1] - s[i])
            continue
        t, t_next = -math.log(s[i]), -math.log(s[i + 1])
        h = t_next - t
        s_mid = math.exp(-(t + h * r))
        down, up = ancestral_step(s[i], s_mid, ctx.eta)
        x_2 = (down / s[i]) * x - math.expm1(t + math.log(down)) * den
        x_2 = x_2 + ctx.brownian(x, s[i], s_mid) * up
        den_2, x_2, _ = yield x_2, s_mid
        down, up = ancestral_step(s[i], s[i + 1], ctx.eta)
        fac = 1 / (2 * r)
        x = (down / s[i]) * x - math.expm1(t + math.log(down)) * ((1 - fac) * den + fac * den_2)
        x = x + ctx.brownian(x, s[i], s[i + 1]) * up
    return x


def dpmpp_2m(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    old = None
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        if s[i + 1] == 0:
            x = den
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            mixed = den
            if old is not None:
                r = (math.log(s[i - 1]) - math.log(s[i])) / h
                mixed = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
            x = (s[i + 1] / s[i]) * x - math.expm1(-h) * mixed
        old = den
    return x


def dpmpp_2m_sde(s: list[float], x: torch.Tensor, ctx: Noise, solver_type: str = "midpoint") -> Sampler:
    old, h_last = None, None
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        h = None
        if s[i + 1] == 0:
            x = den
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            eta_h = ctx.eta * h
            phi = -math.expm1(-h - eta_h)
            x = s[i + 1] / s[i] * math.exp(-eta_h) * x + phi * den
            if old is not None and h_last is not None:
                r = h_last / h
                factor = (phi / (-h - eta_h) + 1) if solver_type == "heun" else 0.5 * phi
                x = x + factor * (1 / r) * (den - old)
            if ctx.eta:
                x = x + ctx.brownian(x, s[i], s[i + 1]) * s[i + 1] * math.sqrt(-math.expm1(-2 * eta_h))
        old, h_last = den, h
    return x


def dpmpp_2m_sde_heun(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    return (yield from dpmpp_2m_sde(s, x, ctx, solver_type="heun"))


def dpmpp_3m_sde(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    den_1 = den_2 = h_1 = h_2 = None
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        h = None
        if s[i + 1] == 0:
            x = den
        else:
            h = math.log(s[i]) - math.log(s[i + 1])
            h_eta = h * (ctx.eta + 1)
            x = math.exp(-h_eta) * x - math.expm1(-h_eta) * den
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None and den_1 is not None and den_2 is not None and h_1 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (den - den_1) / r0, (den_1 - den_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif h_1 is not None and den_1 is not None:
                x = x + phi_2 * (den - den_1) / (h_1 / h)
            if ctx.eta:
                x = x + ctx.brownian(x, s[i], s[i + 1]) * s[i + 1] * math.sqrt(-math.expm1(-2 * h * ctx.eta))
        den_1, den_2, h_1, h_2 = den, den_1, h, h_1
    return x


def restart(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    """A1111's Restart sampler (Xu et al. 2023): Heun steps, with one (or two) jumps back up to
    sigma 2 near sigma 0.1 from 20 steps on; its Karras schedule then replaces the given one."""
    from studio.generation.schedules import karras

    steps, restarts = len(s) - 1, {}
    if steps >= 20:
        restart_steps, times = (steps // 4, 2) if steps >= 36 else (9, 1)
        s = karras(steps - restart_steps * times, s[-2], s[0]).tolist()
        restarts = {0.1: (restart_steps + 1, times, 2.0)}
    nearest = lambda value: min(range(len(s)), key=lambda k: abs(s[k] - value))  # noqa: E731
    at = {nearest(key): value for key, value in restarts.items()}
    pairs = []
    for i in range(len(s) - 1):
        pairs.append((s[i], s[i + 1]))
        if i + 1 in at:
            count, times, top = at[i + 1]
            high = nearest(top)
            if high < i + 1:
                again = karras(count, s[i + 1], s[high]).tolist()[:-1]
                pairs.extend(list(zip(again[:-1], again[1:])) * times)
    last = None
    for old, new in pairs:
        if last is not None and last < old:
            x = x + ctx.randn(x) * (old ** 2 - last ** 2) ** 0.5
        x = yield from _heun_step(x, old, new)
        last = new
    return x


def plms(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    """A1111's PLMS in sigma space (DDIM's update is an Euler step there): pseudo improved Euler
    first, then Adams-Bashforth on the noise prediction with equal-step weights."""
    old: list[torch.Tensor] = []
    for i in range(len(s) - 1):
        den, x, _ = yield x, s[i]
        eps = _d(x, s[i], den)
        if not old and s[i + 1] > 0:
            x_2 = x + eps * (s[i + 1] - s[i])
            den_2, x_2, _ = yield x_2, s[i + 1]
            prime = (eps + _d(x_2, s[i + 1], den_2)) / 2
        elif len(old) == 1:
            prime = (3 * eps - old[-1]) / 2
        elif len(old) == 2:
            prime = (23 * eps - 16 * old[-1] + 5 * old[-2]) / 12
        elif len(old) >= 3:
            prime = (55 * eps - 59 * old[-1] + 37 * old[-2] - 9 * old[-3]) / 24
        else:
            prime = eps
        old = [*old, eps][-3:]
        x = x + prime * (s[i + 1] - s[i])
    return x


def ddim_cfgpp(s: list[float], x: torch.Tensor, ctx: Noise) -> Sampler:
    """CFG++ (Chung et al. 2024) as A1111's DDIM CFG++: the guided prediction at 1/12.5 of the CFG
    scale (KScheduler applies it), then renoised along the *unconditional* noise."""
    for i in range(len(s) - 1):
        den, x, den_uncond = yield x, s[i]
        eps_uncond = _d(x, s[i], den if den_uncond is None else den_uncond)
        x = den + eps_uncond * s[i + 1]
    return x
