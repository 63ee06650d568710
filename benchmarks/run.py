"""The benchmark suite: every figure a ratio to a baseline measured in the same process.

    python -m benchmarks.run [--quick] [--smoke] [--results-dir DIR] [--no-docs]
    python -m benchmarks.run --issue26 [--smoke] ...   (benchmarks/issue26.py: issue 26's section)

Workloads: the embedded default model (each core sampler, studio vs bare diffusers at equal
settings) and an SD1.5-size random-weight model written as a single file and cached outside the
repo (benchmarks/workloads.py) at 256² (and 512² without --quick): diffusers' fp32 default as
the baseline, against the studio's auto dtype (bf16 on CPUs with fast bf16), its step caching,
channels_last, and the same pipeline called bare. Cases of a group are interleaved rep by rep,
so a busy machine slows all of them alike; CPU and wall time, min/median/max over the reps.

Each run writes benchmarks/results/<UTC timestamp>[-quick|-smoke].json (never overwriting),
compares its ratios with the newest earlier file of the same kind and exits 1 when a ratio got
worse beyond the threshold its rounds' spread sets (benchmarks/compare.py: medians of 7 interleaved
rounds, at least 4 %, figures under 50 ms ignored); without --no-docs it regenerates docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
DOCS = HERE.parent / "docs" / "performance.md"
REGRESSION = 0.15
CORE_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M Karras", "DDIM", "UniPC")
PROMPT = "a red circle on a blue background"


@dataclass(frozen=True)
class Plan:
    kind: str  # "full" | "quick" | "smoke"
    reps: int
    default_steps: int
    default_samplers: tuple[str, ...]
    sd15_sizes: tuple[int, ...]
    sd15_steps: int


PLANS = {
    "full": Plan("full", 7, 20, CORE_SAMPLERS, (256, 512), 10),
    "quick": Plan("quick", 7, 10, CORE_SAMPLERS, (256,), 6),
    "smoke": Plan("smoke", 3, 2, ("Euler",), (), 0),
}


# ---------------------------------------------------------------- timing


def _time(call: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return time.process_time() - cpu, time.perf_counter() - wall


def interleaved(cases: dict[str, Callable[[], Any]], reps: int, baseline: str, warm_up: bool = True) -> dict[str, Any]:
    """Time every case `reps` times, one rep of each in turn (after one warm-up of each)."""
    for call in cases.values() if warm_up else ():
        call()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for rep in range(reps):
        for name, call in cases.items():
            samples[name].append(_time(call))
            print(f"  rep {rep + 1}/{reps} {name}: cpu {samples[name][-1][0]:.2f} s, wall {samples[name][-1][1]:.2f} s",
                  file=sys.stderr, flush=True)
    base_cpu = statistics.median(s[0] for s in samples[baseline])
    base_wall = statistics.median(s[1] for s in samples[baseline])
    out: dict[str, Any] = {"baseline": baseline, "cases": {}}
    for name, runs in samples.items():
        cpu, wall = [r[0] for r in runs], [r[1] for r in runs]
        out["cases"][name] = {
            "cpu_s": _spread(cpu), "wall_s": _spread(wall),
            "ratio_cpu": round(statistics.median(cpu) / base_cpu, 3),
            # each round's ratio to the same round's baseline: the comparator's spread (benchmarks/compare.py)
            "ratio_rounds": [round(r[0] / b[0], 4) if b[0] > 0 else 0.0 for r, b in zip(runs, samples[baseline])],
            "ratio_wall": round(statistics.median(wall) / base_wall, 3),
        }
    return out


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


# ---------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    import diffusers
    import transformers

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "amx_int8")
    return {
        "cpu": model, "flags": [f for f in wanted if f in flags], "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
        "python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "cuda": torch.cuda.is_available(),
    }


# ---------------------------------------------------------------- workloads


def default_model_groups(plan: Plan, root: Path) -> dict[str, Any]:
    """Studio Engine.run vs bare diffusers on the same default-model weights, per sampler."""
    from diffusers import DiffusionPipeline

    from studio.checkpoints.catalog import DEFAULT_MODEL_DIR
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.generation.samplers import make_scheduler
    from studio.request import GenerationRequest
    from studio.settings import Settings

    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", cache_dir=root / "cache")
    engine = Engine(ModelManager(settings))
    studio_pipe = engine.models.current().pipe
    bare = DiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR, dtype=studio_pipe.unet.dtype, local_files_only=True,
                                             safety_checker=None, requires_safety_checker=False).to(studio_pipe.device)
    bare.set_progress_bar_config(disable=True)
    groups = {}
    for sampler in plan.default_samplers:
        request = GenerationRequest(prompt=PROMPT, sampler_name=sampler, steps=plan.default_steps, seed=1,
                                    width=64, height=64)

        def bare_run(sampler: str = sampler) -> None:
            bare.scheduler = make_scheduler(sampler, bare.scheduler.config)
            with torch.inference_mode():
                bare(PROMPT, num_inference_steps=plan.default_steps, width=64, height=64,
                     generator=torch.Generator().manual_seed(1))

        groups[f"default/{sampler}"] = {
            "settings": f"64x64, {plan.default_steps} steps, CFG 7, {studio_pipe.unet.dtype}",
            **interleaved({"bare diffusers": bare_run, "studio": lambda r=request: engine.run(r)},
                          plan.reps, "bare diffusers"),
        }
    groups["default/previews"] = preview_costs(engine, plan)
    return groups


def preview_costs(engine: Any, plan: Plan) -> dict[str, Any]:
    """Seconds per preview (each method) as a fraction of a sampling step, at one preview per 5 steps."""
    from studio.generation.previews import preview_image
    from studio.request import GenerationRequest

    seen: list[torch.Tensor] = []
    request = GenerationRequest(prompt=PROMPT, sampler_name="Euler", steps=max(4, plan.default_steps), seed=3)
    result = engine.run(request, lambda progress: seen.append(progress.latents.clone()))
    pipe = engine.models.current().pipe
    import numpy as np

    final = np.asarray(result.images[0].image.convert("RGB"), dtype=float).mean(axis=(0, 1))
    cases: dict[str, Callable[[], Any]] = {"step": lambda: engine.run(request.replace(steps=1))}
    for method in ("Approx cheap", "Full"):
        cases[method] = lambda m=method: preview_image(seen[-1], pipe, m)
    timings = interleaved(cases, plan.reps, "step")
    for method in ("Approx cheap", "Full"):
        preview = np.asarray(preview_image(seen[-1], pipe, method), dtype=float).mean(axis=(0, 1))
        entry = timings["cases"][method]
        entry["cost_at_every_5_steps"] = round(entry["ratio_cpu"] / 5, 4)
        entry["mean_colour_error"] = round(float(np.abs(preview - final).mean()), 2)
    timings["settings"] = "preview of the last step's latents vs one 1-step run (an upper bound of a step)"
    return timings


def sd15_groups(plan: Plan) -> dict[str, Any]:
    """SD1.5-size random model: diffusers' fp32 default vs the studio (auto dtype) and its options."""
    from diffusers import StableDiffusionPipeline

    from benchmarks.workloads import BENCH_CACHE, sd15_single_file
    from studio.checkpoints import single_file
    from studio.checkpoints.devices import use_memory_format
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.request import GenerationRequest
    from studio.settings import Settings

    path = sd15_single_file(torch.float16)
    settings = Settings(models_dir=BENCH_CACHE, cache_dir=BENCH_CACHE / "cache")
    engine = Engine(ModelManager(settings))
    model = engine.models.load(path.name)
    pipe = model.pipe
    config = single_file.with_tokenizer(single_file.SHIPPED_CONFIGS / "sd15", settings)
    fp32 = StableDiffusionPipeline.from_single_file(str(path), config=str(config), dtype=torch.float32,
                                                    local_files_only=True, safety_checker=None,
                                                    requires_safety_checker=False).to(pipe.device)
    fp32.set_progress_bar_config(disable=True)
    groups = {}
    for size in plan.sd15_sizes:
        steps = plan.sd15_steps
        request = GenerationRequest(prompt=PROMPT, sampler_name="Euler", steps=steps, seed=1, width=size, height=size)

        def bare(target: Any) -> Callable[[], None]:
            def call() -> None:
                with torch.inference_mode():
                    target(PROMPT, num_inference_steps=steps, width=size, height=size,
                           generator=torch.Generator().manual_seed(1))
            return call

        def contiguous() -> None:  # the studio turns channels_last on for bf16 on CPU; this is without it
            _memory_format(pipe, torch.contiguous_format)
            try:
                engine.run(request)
            finally:
                use_memory_format([pipe.unet, pipe.vae], pipe.device, pipe.unet.dtype)

        cases = {
            "diffusers fp32 default": bare(fp32),
            f"bare diffusers {pipe.unet.dtype}".replace("torch.", ""): bare(pipe),
            "studio": lambda: engine.run(request),
            "studio cache every 2": lambda: engine.run(request.replace(cache_interval=2)),
            "studio cache every 3": lambda: engine.run(request.replace(cache_interval=3)),
            "studio without channels_last": contiguous,
        }
        for warm in (bare(fp32), lambda: engine.run(request.replace(steps=1))):  # one-time kernel setup
            warm()
        groups[f"sd15/{size}"] = {"settings": f"{size}x{size}, {steps} steps, Euler, CFG 7; studio in {pipe.unet.dtype}",
                                  **interleaved(cases, plan.reps, "diffusers fp32 default", warm_up=False)}
    return groups


def _memory_format(pipe: Any, memory_format: torch.memory_format) -> None:
    pipe.unet.to(memory_format=memory_format)
    pipe.vae.to(memory_format=memory_format)


def load_memory() -> dict[str, Any]:
    from benchmarks.load_memory import measure_in_subprocess
    from benchmarks.workloads import sd15_single_file

    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return {f"sd15 {name} file, auto": measure_in_subprocess(sd15_single_file(dtype), "auto", env)
            for name, dtype in (("fp16", torch.float16), ("fp32", torch.float32))}


# ---------------------------------------------------------------- results


def ratios(results: dict[str, Any]) -> dict[str, float]:
    return {f"{group}/{case}": entry["ratio_cpu"]
            for group, data in results["groups"].items() for case, entry in data["cases"].items()}


def previous_results(directory: Path, kind: str, exclude: Path) -> dict[str, Any] | None:
    files = sorted(p for p in directory.glob(f"*-{kind}.json") if p != exclude)
    return json.loads(files[-1].read_text()) if files else None


def regressions(new: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
    """Ratios (lower is better) worse than the previous run's beyond the threshold their own spread
    sets (benchmarks/compare.py), figures under the floor ignored."""
    from benchmarks.compare import figures
    from benchmarks.compare import regressions as compare

    return [] if old is None else compare(figures(old), figures(new))


def run(plan: Plan, results_dir: Path = RESULTS_DIR) -> tuple[dict[str, Any], Path, list[str]]:
    from studio.checkpoints.devices import configure_threads

    configure_threads()
    started = datetime.now(timezone.utc)
    results: dict[str, Any] = {"started": started.isoformat(timespec="seconds"), "kind": plan.kind,
                               "command": _command(plan), "machine": machine(), "groups": {}}
    if plan.kind != "smoke":  # fresh processes: the CLI's and the server's start-up CPU time
        from benchmarks.starts import measure

        results["starts"] = measure(compile_starts=plan.kind == "full")
        print(json.dumps(results["starts"]), file=sys.stderr, flush=True)
    if plan.sd15_sizes:
        results["groups"].update(sd15_groups(plan))
        print(json.dumps(results["groups"], indent=1), file=sys.stderr, flush=True)
        results["load_memory"] = load_memory()
    with TemporaryDirectory() as tmp:
        results["groups"].update(default_model_groups(plan, Path(tmp)))
    results["duration_s"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{plan.kind}.json"
    while path.exists():  # never overwrite
        path = path.with_name(path.stem + "-1.json")
    path.write_text(json.dumps(results, indent=1) + "\n")
    return results, path, regressions(results, previous_results(results_dir, plan.kind, path))


def _command(plan: Plan) -> str:
    return "python -m benchmarks.run" + {"full": "", "quick": " --quick", "smoke": " --smoke"}[plan.kind]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--issue26" in argv:  # issue 26's one-run figures and docs section: its own options
        from benchmarks.issue26 import main as issue26

        return issue26([a for a in argv if a != "--issue26"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issue26", action="store_true", help="issue 26's figures (benchmarks/issue26.py)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, 256² only (< 10 minutes)")
    parser.add_argument("--smoke", action="store_true", help="default model, one sampler, 2 steps (seconds)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-docs", action="store_true", help="do not regenerate docs/performance.md")
    args = parser.parse_args(argv)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    results, path, worse = run(plan, args.results_dir)
    print(json.dumps({"results": str(path), "ratios": ratios(results)}, indent=1))
    if not args.no_docs and plan.kind != "smoke":
        from benchmarks.report import write_performance_doc

        write_performance_doc(results, path, DOCS)
    if worse:
        print("REGRESSION (worse than the previous run beyond its spread):\n  " + "\n  ".join(worse), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
