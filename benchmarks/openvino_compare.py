"""OpenVINO (optimum-intel) side by side with the studio's bf16 path, on the SD1.5-size random model.

optimum-intel is not a dependency of the studio: run this in a separate venv that has it
(`python -m venv /work/ovenv`, our dependencies plus `optimum-intel[openvino]`):

    PYTHONPATH=$PWD /work/ovenv/bin/python -m benchmarks.openvino_compare [--size 256] [--steps 6]

The random checkpoint (benchmarks/workloads.py) is exported offline: loaded in fp32 from the single
file, saved as a diffusers folder, converted by optimum-intel to OpenVINO IR (kept in the bench
cache). Both pipelines run Euler at the same size, steps and CFG; the cases are interleaved rep by
rep in this one process and timed in CPU time. Per step = (N-step image - 1-step image) / (N - 1).
Writes benchmarks/results/<UTC>-openvino.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmarks.run import PROMPT, RESULTS_DIR, interleaved, machine


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def export(single: Path, cache: Path) -> Path:
    """The OpenVINO IR folder of `single`, exported once (fp32 diffusers folder -> optimum-intel)."""
    from diffusers import StableDiffusionPipeline
    from optimum.intel import OVStableDiffusionPipeline

    from studio.checkpoints import single_file
    from studio.settings import Settings

    ir = cache / f"{single.stem}-openvino"
    if (ir / "model_index.json").is_file():
        return ir
    folder = cache / f"{single.stem}-diffusers"
    if not (folder / "model_index.json").is_file():
        config = single_file.with_tokenizer(single_file.SHIPPED_CONFIGS / "sd15", Settings(cache_dir=cache / "cache"))
        pipe = StableDiffusionPipeline.from_single_file(str(single), config=str(config), dtype=torch.float32,
                                                        local_files_only=True, safety_checker=None,
                                                        requires_safety_checker=False)
        pipe.save_pretrained(folder)
        del pipe
    ov = OVStableDiffusionPipeline.from_pretrained(folder, export=True, compile=False, local_files_only=True)
    ov.save_pretrained(ir)
    return ir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)

    import openvino
    from diffusers import EulerDiscreteScheduler
    from optimum.intel import OVStableDiffusionPipeline

    from benchmarks.workloads import BENCH_CACHE, sd15_single_file
    from studio.checkpoints.devices import configure_threads
    from studio.checkpoints.manager import ModelManager
    from studio.generation.engine import Engine
    from studio.request import GenerationRequest
    from studio.settings import Settings

    configure_threads()
    single = sd15_single_file(torch.float16)
    started = datetime.now(timezone.utc)
    ir = export(single, BENCH_CACHE)
    print(f"exported in {(datetime.now(timezone.utc) - started).total_seconds():.0f} s", file=sys.stderr, flush=True)

    engine = Engine(ModelManager(Settings(models_dir=BENCH_CACHE, cache_dir=BENCH_CACHE / "cache")))
    studio_pipe = engine.models.load(single.name).pipe
    ov = OVStableDiffusionPipeline.from_pretrained(ir, compile=False, local_files_only=True)
    ov.reshape(batch_size=1, height=args.size, width=args.size, num_images_per_prompt=1)
    ov.compile()
    ov.scheduler = EulerDiscreteScheduler.from_config(ov.scheduler.config)
    ov.set_progress_bar_config(disable=True)
    precision = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")

    def studio_run(steps: int) -> Any:
        request = GenerationRequest(prompt=PROMPT, sampler_name="Euler", steps=steps, seed=1,
                                    width=args.size, height=args.size)
        return lambda: engine.run(request)

    def ov_run(steps: int) -> Any:
        return lambda: ov(PROMPT, num_inference_steps=steps, width=args.size, height=args.size, guidance_scale=7.0,
                          generator=torch.Generator().manual_seed(1))

    timings = interleaved({f"studio {studio_pipe.unet.dtype} {args.steps} steps".replace("torch.", ""): studio_run(args.steps),
                           f"openvino {args.steps} steps": ov_run(args.steps),
                           "studio 1 step": studio_run(1), "openvino 1 step": ov_run(1)},
                          args.reps, f"studio {studio_pipe.unet.dtype} {args.steps} steps".replace("torch.", ""))
    cases = timings["cases"]
    med = {name: entry["cpu_s"]["median"] for name, entry in cases.items()}
    names = list(med)
    per_step = {"studio": (med[names[0]] - med[names[2]]) / (args.steps - 1),
                "openvino": (med[names[1]] - med[names[3]]) / (args.steps - 1)}
    results = {"started": started.isoformat(timespec="seconds"), "kind": "openvino",
               "command": "python -m benchmarks.openvino_compare", "machine": machine(),
               "openvino": openvino.__version__, "optimum_intel": _version("optimum-intel"), "openvino_cpu_precision": str(precision),
               "settings": f"{args.size}x{args.size}, {args.steps} steps, Euler, CFG 7, batch 1",
               "timings": timings, "per_step_cpu_s": {k: round(v, 3) for k, v in per_step.items()},
               "openvino_over_studio_per_image": cases[names[1]]["ratio_cpu"],
               "openvino_over_studio_per_step": round(per_step["openvino"] / per_step["studio"], 3)}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}-openvino.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
