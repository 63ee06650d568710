"""`--backend openvino` (plain openvino, no optimum) against eager torch, per UNet step, on the
SD1.5-size random model of benchmarks/workloads.py:

    PYTHONPATH=$PWD python -m benchmarks.openvino_compare [--size 512] [--steps 2] [--rounds 3]

Four cases, interleaved round by round in this one process and timed in process CPU time: eager
fp32, eager bf16 (the studio's CPU default for SD1.5-size models where the CPU has bf16: channels
last), OpenVINO with the bf16 and the f32 precision hint. One "step" is one UNet call at batch 2
(CFG's two halves) on size/8 latents and 77 tokens; `steps` calls are timed together. Each case's
output is compared with eager fp32's (mean |difference| / mean |fp32 output|). The conversion goes
through the studio's own code and cache (studio/checkpoints/openvino_unet.py), so its time is paid
once per cache folder; it is reported when this run paid it.

`measure(size, steps, rounds)` returns the figures as a dict (docs/performance.md's generator calls
it); `main` also writes benchmarks/results/<UTC>-openvino.json.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch

from benchmarks.run import RESULTS_DIR, interleaved, machine


def _load_unet() -> tuple[Any, str]:
    """The random SD1.5-size UNet in fp32 (as the studio loads it) and its model hash."""
    from benchmarks.workloads import BENCH_CACHE, sd15_single_file
    from studio.checkpoints.manager import ModelManager
    from studio.settings import Settings

    single = sd15_single_file(torch.float16)
    models = ModelManager(Settings(models_dir=BENCH_CACHE, cache_dir=BENCH_CACHE / "cache", dtype="float32"))
    model = models.load(single.name)
    return model.pipe.unet.eval(), model.hash


def _difference(output: torch.Tensor, reference: torch.Tensor) -> float:
    return round(float((output.float() - reference).abs().mean() / reference.abs().mean()), 5)


def measure(size: int = 512, steps: int = 2, rounds: int = 3) -> dict[str, Any]:
    """Per-step CPU seconds of eager fp32 / eager bf16 / OpenVINO bf16 / OpenVINO f32 at `size`²,
    their ratios to eager bf16, and each one's output difference to eager fp32."""
    from studio.checkpoints import openvino_unet
    from studio.checkpoints.devices import configure_threads

    configure_threads()
    unet, model_hash = _load_unet()
    from benchmarks.workloads import BENCH_CACHE

    cpu = time.process_time()
    before = openvino_unet.conversions
    xml = openvino_unet.converted_ir(unet, BENCH_CACHE / "cache" / "openvino", model_hash)
    conversion_cpu = round(time.process_time() - cpu, 1) if openvino_unet.conversions > before else None
    gc.collect()
    compiled = {}
    for hint in ("bf16", "f32"):
        cpu = time.process_time()
        compiled[hint] = openvino_unet.OpenVinoUNet(unet, xml, hint)
        compiled[f"{hint}_compile_cpu_s"] = round(time.process_time() - cpu, 2)
    bf16 = copy.deepcopy(unet).to(torch.bfloat16).to(memory_format=torch.channels_last)

    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, unet.config.in_channels, size // 8, size // 8, generator=generator)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, generator=generator)
    timestep = torch.tensor(500)
    outputs: dict[str, torch.Tensor] = {}

    def case(name: str, model: Any, dtype: torch.dtype) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for _ in range(steps):
                    outputs[name] = model(sample.to(dtype), timestep, text.to(dtype)).sample
        return run

    cases = {"eager bf16": case("eager bf16", bf16, torch.bfloat16), "eager fp32": case("eager fp32", unet, torch.float32),
             "openvino bf16": case("openvino bf16", compiled["bf16"], torch.float32),
             "openvino f32": case("openvino f32", compiled["f32"], torch.float32)}
    timings = interleaved(cases, rounds, "eager bf16", warm_up=True)
    reference = outputs["eager fp32"].float()
    per_step = {name: round(entry["cpu_s"]["median"] / steps, 3) for name, entry in timings["cases"].items()}
    return {
        "kind": "openvino", "size": size, "steps_per_round": steps, "rounds": rounds,
        "openvino": __import__("openvino").__version__, "precision_hint_default": openvino_unet.precision_hint(),
        "load_average": list(os.getloadavg()), "machine": machine(),
        "conversion_cpu_s": conversion_cpu, "compile_cpu_s": {h: compiled[f"{h}_compile_cpu_s"] for h in ("bf16", "f32")},
        "per_step_cpu_s": per_step,
        "speed_vs_eager_bf16": {name: round(per_step["eager bf16"] / value, 3) for name, value in per_step.items()},
        "difference_vs_eager_fp32": {name: _difference(out, reference) for name, out in outputs.items()},
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "timings": timings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2, help="UNet calls timed together per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc)
    results = {"started": started.isoformat(timespec="seconds"),
               "command": f"python -m benchmarks.openvino_compare --size {args.size} --steps {args.steps} "
                          f"--rounds {args.rounds}", **measure(args.size, args.steps, args.rounds)}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}-openvino.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "timings")}, indent=1))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
