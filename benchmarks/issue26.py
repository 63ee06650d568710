"""Issue 26's figures from ONE process run, written into docs/performance.md's issue-26 section:

- per image at 512²: diffusers' fp32 default, the studio's default, and the studio's fastest
  documented path (presets/fast-cpu.json), each acceleration added one at a time with its speed-up
  and the mean pixel difference it makes; and the studio default on `--backend openvino` (UNet, VAE
  decoder, text encoders: benchmarks/openvino_image.py), interleaved with them, its conversion apart;
- OpenVINO vs eager per UNet step (benchmarks/openvino_compare.measure);
- few-step (LCM 4 steps, CFG 1) vs 20 steps;
- token merging 0.3 / 0.5 at 512² and 768², per image (few-step settings) and per UNet step;
- negative guidance minimum sigma (`s_min_uncond`) per image at 256² (benchmarks/negative_guidance.py);
- start-up: the CLI's cold image vs the import floor (benchmarks/starts.py).

    python -m benchmarks.run --issue26 [--smoke] [--no-starts] [--rounds N] [--step-rounds N] [--start-rounds N]
                                       [--results-dir DIR] [--docs PATH | --no-docs] [--from-results FILE]

The model is the random full-size SD1.5 single file benchmarks/workloads.py builds (nothing is
downloaded); --smoke uses the embedded default model at tiny sizes (the test of this generator).
Timings are process CPU time; cases compared with each other are interleaved round by round.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch

from benchmarks.openvino_image import CASE as OV_CASE
from benchmarks.run import DOCS, PROMPT, RESULTS_DIR, machine

OPENVINO_STEPS = 1  # UNet calls per case and round in the OpenVINO comparison (each costs ~10-20 s CPU at 512²)
FAST_PRESET = Path(__file__).resolve().parent.parent / "presets" / "fast-cpu.json"


GROUPS = ("per_image", "token_merging", "negative_guidance", "openvino", "starts")


@dataclass(frozen=True)
class Plan:
    kind: str
    model: str  # "sd15": the random SD1.5-size single file; "default": the embedded default model
    size: int  # the per-image comparison
    tome_sizes: tuple[int, ...]
    steps: int = 20
    rounds: int = 1  # per-image rounds (each image at 512² costs minutes)
    step_rounds: int = 3  # per-UNet-step rounds (token merging)
    start_rounds: int = 3  # 0: start-up not in this run
    openvino: bool = True
    tome_image_sizes: tuple[int, ...] | None = None  # token merging per image at these sizes (None: all)
    groups: tuple[str, ...] = GROUPS  # which of them this run measures
    uncond_size: int = 256  # negative guidance minimum sigma, per image (3 images at this size)


PLANS = {
    "issue26": Plan("issue26", "sd15", 512, (512, 768)),
    "issue26-smoke": Plan("issue26-smoke", "default", 64, (64, 96), steps=4, step_rounds=1, start_rounds=0,
                          openvino=False),
}


def fast_settings() -> dict[str, Any]:
    """The fastest documented path's request fields (the preset a user chooses)."""
    values = json.loads(FAST_PRESET.read_text())
    return {k: v for k, v in values.items() if k not in ("description", "matches")}


# ---------------------------------------------------------------- timing and images


def _timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = call()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def compare(cases: dict[str, Callable[[], Any]], rounds: int, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each case `rounds` times, one of each in turn; (timings, the last output of each case)."""
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    wall: dict[str, list[float]] = {name: [] for name in cases}
    outputs: dict[str, Any] = {}
    for index in range(rounds):
        for name, call in cases.items():
            c, w, outputs[name] = _timed(call)
            cpu[name].append(round(c, 3))
            wall[name].append(round(w, 3))
            print(f"  [{label}] round {index + 1}/{rounds} {name}: cpu {c:.1f} s, wall {w:.1f} s "
                  f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    timings = {name: {"cpu_s": cpu[name], "cpu_median_s": round(statistics.median(cpu[name]), 3),
                      "wall_median_s": round(statistics.median(wall[name]), 3)} for name in cases}
    return timings, outputs


def pixel_difference(a: Any, b: Any) -> float:
    """Mean absolute difference of two images' RGB pixels, 0..255."""
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return round(float(np.abs(x - y).mean()), 2)


# ---------------------------------------------------------------- models


def load_models(plan: Plan, root: Path, with_fp32: bool = True) -> tuple[Any, Any, str]:
    """(studio Engine, diffusers' fp32 pipeline on the same weights or None, a description of the model)."""
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.settings import Settings

    if plan.model == "default":
        from diffusers import DiffusionPipeline

        from studio.checkpoints.catalog import DEFAULT_MODEL_DIR

        engine = Engine(ModelManager(Settings(models_dir=root / "models", outputs_dir=root / "outputs",
                                              cache_dir=root / "cache")))
        engine.models.current()
        fp32 = DiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR, dtype=torch.float32, local_files_only=True,
                                                 safety_checker=None, requires_safety_checker=False) if with_fp32 else None
        described = "the embedded default model"
    else:
        from diffusers import StableDiffusionPipeline

        from benchmarks.workloads import BENCH_CACHE, sd15_single_file
        from studio.checkpoints import single_file

        path = sd15_single_file(torch.float16)
        settings = Settings(models_dir=BENCH_CACHE, cache_dir=BENCH_CACHE / "cache", outputs_dir=root / "outputs")
        engine = Engine(ModelManager(settings))
        engine.models.load(path.name)
        config = single_file.with_tokenizer(single_file.SHIPPED_CONFIGS / "sd15", settings)
        fp32 = StableDiffusionPipeline.from_single_file(str(path), config=str(config), dtype=torch.float32,
                                                        local_files_only=True, safety_checker=None,
                                                        requires_safety_checker=False) if with_fp32 else None
        described = f"a random full-size SD1.5 single file ({path.name}, benchmarks/workloads.py)"
    if fp32 is not None:
        fp32.set_progress_bar_config(disable=True)
    return engine, fp32, described


# ---------------------------------------------------------------- the groups


def per_image(plan: Plan, engine: Any, fp32: Any) -> dict[str, Any]:
    """diffusers fp32 default -> studio default -> few-step -> + each of the fast preset's accelerations."""
    from studio.generation.samplers import make_scheduler
    from studio.request import GenerationRequest

    size, steps = plan.size, plan.steps
    default = GenerationRequest(prompt=PROMPT, seed=1, width=size, height=size, steps=steps)
    fp32.scheduler = make_scheduler(default.sampler_name, fp32.scheduler.config)

    def diffusers_fp32() -> Any:
        with torch.inference_mode():
            return fp32(PROMPT, num_inference_steps=steps, width=size, height=size, guidance_scale=default.cfg_scale,
                        generator=torch.Generator().manual_seed(1)).images[0]

    fast = fast_settings()
    few = default.replace(sampler_name=fast["sampler_name"], steps=fast["steps"], cfg_scale=fast["cfg_scale"])
    chain = [("diffusers fp32 default", "", diffusers_fp32),
             ("studio default", f"{engine.models.current().pipe.unet.dtype} + the studio's defaults".replace("torch.", ""),
              lambda: engine.run(default).images[0].image),
             ("few-step", f"{fast['sampler_name']} {fast['steps']} steps, CFG {fast['cfg_scale']:g}",
              lambda: engine.run(few).images[0].image)]
    request = few
    for key, label in (("token_merging_ratio", "token merging {}"), ("cache_interval", "DeepCache every {}")):
        if fast.get(key):
            request = request.replace(**{key: fast[key]})
            chain.append((f"+ {label.format(fast[key])}", f"{key}={fast[key]}",
                          lambda r=request: engine.run(r).images[0].image))
    # one-time kernel set-up (oneDNN primitives, allocator) outside the timings: a 1-step image of each
    fp32(PROMPT, num_inference_steps=1, width=size, height=size)
    engine.run(default.replace(steps=1))
    cases = {name: call for name, _, call in chain}
    ov = _openvino_case(plan, engine, default)  # the studio default on --backend openvino: one more case
    if ov.get("case") is not None:
        cases = {**dict(list(cases.items())[:2]), OV_CASE: ov["case"].call, **dict(list(cases.items())[2:])}
    timings, images = compare(cases, plan.rounds, f"{size}² per image")
    base = timings["diffusers fp32 default"]["cpu_median_s"]
    # each case against the one it adds to: the chain's row above; OpenVINO against the studio default
    compared = [(name, what, previous[0] if previous else None)
                for (name, what, _), previous in zip(chain, [None, *chain])]
    if OV_CASE in timings:
        compared.append((OV_CASE, f"the studio default on `--backend openvino` ({ov['setup']['precision_hint']} "
                                  "hint), conversion cached on disk", "studio default"))
    rows = [{"case": name, "what": what, **timings[name], "compared_with": versus,
             "speedup_vs_diffusers_fp32": round(base / timings[name]["cpu_median_s"], 2),
             "speedup_vs_previous": round(timings[versus]["cpu_median_s"] / timings[name]["cpu_median_s"], 2)
             if versus else 1.0,
             "pixel_difference_vs_previous": pixel_difference(images[name], images[versus]) if versus else 0.0}
            for name, what, versus in compared]
    fastest = min(rows[1:len(chain)], key=lambda row: row["cpu_median_s"])  # the documented (preset) path
    return {"settings": f"{size}x{size}, studio default: {default.sampler_name} {steps} steps CFG {default.cfg_scale:g} "
                        f"(diffusers fp32 given the same sampler, steps and CFG); {plan.rounds} round(s)",
            "rows": rows, "fastest": fastest["case"],
            "fastest_pixel_difference_vs_studio_default": pixel_difference(images[fastest["case"]],
                                                                            images["studio default"]),
            "openvino": ov.get("setup") or {"error": ov["error"]}}


def _openvino_case(plan: Plan, engine: Any, request: Any) -> dict[str, Any]:
    """{"case": benchmarks.openvino_image.OpenVinoImage, "setup": its conversion and compile cost}, or
    {"error": why it is not in this run} (--smoke: converting even the tiny model costs ~10 s)."""
    if not plan.openvino:
        return {"error": "not in this run (--smoke)"}
    from benchmarks.openvino_image import prepare

    try:
        case = prepare(engine, request)
    except Exception as error:  # noqa: BLE001 - no openvino, a failed conversion: a finding, the group goes on
        return {"error": f"failed: {type(error).__name__}: {error}"}
    return {"case": case, "setup": case.setup}


def _image(engine: Any, request: Any) -> Any:
    return engine.run(request).images[0].image


def token_merging(plan: Plan, engine: Any) -> dict[str, Any]:
    """ToMe 0.3 / 0.5 vs off at each size: per image (few-step settings) and per UNet step (CFG batch)."""
    from studio.generation.speedups import token_merging as merged
    from studio.request import GenerationRequest

    fast = fast_settings()
    pipe = engine.models.current().pipe
    out: dict[str, Any] = {}
    for size in plan.tome_sizes:
        request = GenerationRequest(prompt=PROMPT, seed=1, width=size, height=size, sampler_name=fast["sampler_name"],
                                    steps=fast["steps"], cfg_scale=fast["cfg_scale"])
        cases = {f"ToMe {r}" if r else "off": partial(_image, engine, request.replace(token_merging_ratio=r))
                 for r in (0.0, 0.3, 0.5)}
        whole = plan.tome_image_sizes is None or size in plan.tome_image_sizes  # else per step only (cost)
        image_t, images = compare(cases, plan.rounds, f"ToMe {size}² per image") if whole else ({}, {})
        latents = torch.randn(2, pipe.unet.config.in_channels, size // 8, size // 8, generator=torch.Generator().manual_seed(1),
                              dtype=pipe.unet.dtype)
        text = torch.randn(2, 77, pipe.unet.config.cross_attention_dim, dtype=pipe.unet.dtype)

        def step(ratio: float, latents: torch.Tensor = latents, text: torch.Tensor = text) -> Callable[[], Any]:
            def call() -> Any:
                with merged(pipe, ratio), torch.inference_mode():
                    return pipe.unet(latents, torch.tensor(500), encoder_hidden_states=text).sample.float()
            return call

        step(0.0)()  # kernel set-up at this size
        step_t, outputs = compare({name: step(r) for name, r in zip(cases, (0.0, 0.3, 0.5))}, plan.step_rounds,
                                  f"ToMe {size}² per step")
        off = outputs["off"]
        out[str(size)] = {name: {
            "per_image": image_t.get(name), "per_step": step_t[name],
            "image_speedup": round(image_t["off"]["cpu_median_s"] / image_t[name]["cpu_median_s"], 2) if whole else None,
            "step_speedup": round(step_t["off"]["cpu_median_s"] / step_t[name]["cpu_median_s"], 2),
            "pixel_difference_vs_off": pixel_difference(images[name], images["off"]) if whole else None,
            # the UNet output's mean absolute change relative to its mean magnitude, one step
            "unet_output_difference_vs_off": round(float((outputs[name] - off).abs().mean() / off.abs().mean()), 4),
        } for name in cases}
    return {"settings": f"per image: {fast['sampler_name']} {fast['steps']} steps CFG {fast['cfg_scale']:g}, "
                        f"{plan.rounds} round(s), at "
                        + (", ".join(f"{v}²" for v in plan.tome_image_sizes) if plan.tome_image_sizes is not None
                           else "every size") + f"; per step: one UNet call on a CFG batch of 2, {plan.step_rounds} "
                        "interleaved round(s), medians", "sizes": out}


def negative_guidance(plan: Plan, engine: Any) -> dict[str, Any]:
    from benchmarks.negative_guidance import measure

    return measure(min(plan.uncond_size, plan.size), plan.steps, plan.rounds, engine, compare, pixel_difference)


def openvino(plan: Plan) -> dict[str, Any]:
    """benchmarks/openvino_compare.measure(size, steps, rounds) when present, else why not."""
    if not plan.openvino:
        return {"error": "not in this run (--smoke)"}
    try:
        from benchmarks.openvino_compare import measure
    except ImportError as error:
        return {"error": f"not in this run: benchmarks.openvino_compare.measure is not on this branch ({error})"}
    try:  # per UNet call (CFG batch of 2): OPENVINO_STEPS calls per case and round, plan.step_rounds rounds
        return measure(plan.size, OPENVINO_STEPS, max(plan.step_rounds, 1))
    except Exception as error:  # noqa: BLE001 - a failed comparison is a finding for the page, not a lost run
        return {"error": f"failed: {type(error).__name__}: {error}"}


def starts(plan: Plan) -> dict[str, Any]:
    if not plan.start_rounds:
        return {"error": "not in this run"}
    from benchmarks.starts import floor_comparison

    with TemporaryDirectory() as tmp:
        return floor_comparison(Path(tmp), plan.start_rounds)


# ---------------------------------------------------------------- the run


def run(plan: Plan, results_dir: Path = RESULTS_DIR, docs: Path | None = DOCS,
        command: str = "python -m benchmarks.run --issue26") -> tuple[dict[str, Any], Path]:
    from benchmarks.issue26_doc import write_section
    from studio.checkpoints.devices import configure_threads

    configure_threads()
    started = datetime.now(timezone.utc)
    results: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "kind": plan.kind,
                               "command": command, "plan": plan.__dict__, "machine": machine(),
                               "fast_preset": fast_settings(), "commit": _commit()}
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{plan.kind}.json"

    def measured(key: str, call: Callable[[], Any]) -> None:
        """One group into the results, saved at once (a later failure keeps what was measured)."""
        try:
            results[key] = call()
        except Exception as error:  # noqa: BLE001 - recorded on the page as a failure, the run goes on
            results[key] = {"error": f"failed: {type(error).__name__}: {error}"}
        results["load_average_at_end"] = list(os.getloadavg())
        results["duration_s"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
        path.write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"{key}: {json.dumps(results[key], default=str)[:2000]}", file=sys.stderr, flush=True)

    if {"per_image", "token_merging", "negative_guidance"} & set(plan.groups):
        with TemporaryDirectory() as tmp:
            engine, fp32, results["model"] = load_models(plan, Path(tmp), "per_image" in plan.groups)
            if "per_image" in plan.groups:
                measured("per_image", partial(per_image, plan, engine, fp32))
            del fp32
            if "token_merging" in plan.groups:
                measured("token_merging", partial(token_merging, plan, engine))
            if "negative_guidance" in plan.groups:
                measured("negative_guidance", partial(negative_guidance, plan, engine))
            del engine
    if "openvino" in plan.groups:
        measured("openvino", partial(openvino, plan))
    if "starts" in plan.groups:
        measured("starts", partial(starts, plan))  # fresh processes, after this one's weights are freed
    if docs is not None:
        write_section(results, path, docs)
    return results, path



def _commit() -> str:
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent)
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the embedded default model at tiny sizes")
    parser.add_argument("--no-starts", action="store_true", help="leave the start-up comparison out")
    parser.add_argument("--rounds", type=int, help="per-image rounds (default 1)")
    parser.add_argument("--step-rounds", type=int, help="per-UNet-step rounds of token merging (default 3)")
    parser.add_argument("--start-rounds", type=int, help="rounds of the start-up comparison (default 3)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--tome-image-sizes", help="comma-separated sizes with token merging per image (default: "
                        "all; the others per UNet step only)")
    parser.add_argument("--groups", help=f"a comma-separated subset of {','.join(GROUPS)} (default: all)")
    parser.add_argument("--from-results", type=Path, nargs="+",
                        help="write the docs section from results file(s), no run (later files fill missing groups)")
    args = parser.parse_args(argv)
    if args.from_results:
        from benchmarks.issue26_doc import merged, write_section

        write_section(merged(args.from_results), args.from_results[0], args.docs)
        return 0
    plan = PLANS["issue26-smoke" if args.smoke else "issue26"]
    if args.groups:
        unknown = set(args.groups.split(",")) - set(GROUPS)
        if unknown:
            parser.error(f"unknown groups: {', '.join(sorted(unknown))} (choose from {', '.join(GROUPS)})")
        plan = replace(plan, groups=tuple(g for g in GROUPS if g in args.groups.split(",")))
    if args.tome_image_sizes:
        plan = replace(plan, tome_image_sizes=tuple(int(v) for v in args.tome_image_sizes.split(",")))
    for field, value in (("rounds", args.rounds), ("step_rounds", args.step_rounds),
                         ("start_rounds", 0 if args.no_starts else args.start_rounds)):
        if value is not None:
            plan = replace(plan, **{field: value})
    given = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.run --issue26" + "".join(f" {a}" for a in given if a != "--issue26")
    _, path = run(plan, args.results_dir, None if args.no_docs else args.docs, command)
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
