"""A whole image with `--backend openvino` (UNet, VAE decoder and text encoders run by OpenVINO) as one
more case of a per-image comparison: the studio's own Engine and CompiledParts (studio/generation/backend.py),
the request unchanged, only the backend switched.

    PYTHONPATH=$PWD python -m benchmarks.openvino_image [--size 512] [--steps 20] [--rounds 1]

runs just this: the studio default (eager, auto dtype) against the same request on OpenVINO, on the
random SD1.5-size single file (benchmarks/workloads.py), interleaved, process CPU time, with the
mean pixel difference of the two images; results in benchmarks/results/<UTC>-openvino-image.json.
`python -m benchmarks.run --issue26` runs the same case inside its per-image group (benchmarks/issue26.py).

The conversion (once per weights, cached on disk under the cache folder) and the compilation (once per
process) are paid in `prepare`, timed there part by part and left out of the per-image figure: a
studio on `--backend openvino` keeps its compiled parts from one image to the next, so between rounds
this case keeps its own CompiledParts (the eager cases' runs would otherwise drop them).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

CASE = "OpenVINO (UNet, VAE decoder, text encoders)"
COMPARED_WITH = "studio default"


@dataclass
class OpenVinoImage:
    """The case's call (one image, PIL) and what preparing it cost."""

    call: Callable[[], Any]
    setup: dict[str, Any] = field(default_factory=dict)


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    cpu = time.process_time()
    out = call()
    return round(time.process_time() - cpu, 1), out


def prepare(engine: Any, request: Any) -> OpenVinoImage:
    """Convert (or find in the disk cache) and compile every part the openvino backend swaps in, then
    one 1-step image on it (kernel set-up, as the eager cases get); the returned call runs `request`
    on OpenVINO. Raises what the backend raises (no openvino package, a refused request...)."""
    from studio.checkpoints import openvino_parts, openvino_unet
    from studio.generation.backend import TEXT_ENCODERS, CompiledParts

    openvino = openvino_unet.require()
    model, settings = engine.models.current(), engine.models.settings
    pipe, cache = model.pipe, settings.cache_dir / "openvino"
    parts = CompiledParts()

    def on_openvino(call: Callable[[], Any]) -> Any:
        eager_parts, eager_choice = engine.compiled, engine.backend_choice
        engine.compiled, engine.backend_choice = parts, lambda: "openvino"
        try:
            return call()
        finally:
            engine.compiled, engine.backend_choice = eager_parts, eager_choice

    # Part by part: the IR (converted here unless cached: `converted`), then the compiled stand-in the
    # engine will find in `parts` (its key is the same: the same studio functions make both).
    jobs = {"unet": (lambda: openvino_unet.converted_ir(pipe.unet, cache, model.hash),
                     lambda: parts.unet(model, settings)),
            "vae_decoder": (lambda: openvino_parts.decoder_ir(pipe.vae, cache, model.hash),
                            lambda: parts.decoder(model, settings, pipe.vae))}
    for name in TEXT_ENCODERS:
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            jobs[name] = (lambda e=encoder, n=name: openvino_parts.encoder_ir(e, cache, model.hash, n),
                          lambda e=encoder, n=name: parts.encoder(model, settings, n, e))
    setup: dict[str, Any] = {"openvino": openvino.__version__, "precision_hint": openvino_unet.precision_hint(),
                             "eager_dtype": str(pipe.unet.dtype).replace("torch.", ""),
                             "converted": {}, "conversion_cpu_s": {}, "compile_cpu_s": {}}
    for name, (convert, compile_part) in jobs.items():
        cpu, (_, converted) = _timed(convert)
        setup["converted"][name] = converted
        setup["conversion_cpu_s"][name] = cpu if converted else None  # None: read from the disk cache
        setup["compile_cpu_s"][name], _ = _timed(compile_part)
    done = [cpu for cpu in setup["conversion_cpu_s"].values() if cpu is not None]
    setup["conversion_total_cpu_s"] = round(sum(done), 1) if done else None
    setup["compile_total_cpu_s"] = round(sum(setup["compile_cpu_s"].values()), 1)
    setup["warm_up_cpu_s"], _ = _timed(lambda: on_openvino(lambda: engine.run(request.replace(steps=1))))
    # conversions the warm-up image still needed (0 expected: the parts above are the ones it uses)
    setup["warm_up_conversions"] = sum(parts.conversions.values())
    return OpenVinoImage(lambda: on_openvino(lambda: engine.run(request).images[0].image), setup)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.issue26 import PLANS, compare, load_models, pixel_difference
    from benchmarks.run import PROMPT, RESULTS_DIR, machine
    from studio.checkpoints.devices import configure_threads
    from studio.request import GenerationRequest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    configure_threads()
    started = datetime.now(timezone.utc)
    with TemporaryDirectory() as tmp:
        engine, _, described = load_models(PLANS["issue26"], Path(tmp), with_fp32=False)
        request = GenerationRequest(prompt=PROMPT, seed=1, width=args.size, height=args.size, steps=args.steps)
        engine.run(request.replace(steps=1))  # eager's kernel set-up, as prepare() does OpenVINO's
        case = prepare(engine, request)
        timings, images = compare({COMPARED_WITH: lambda: engine.run(request).images[0].image, CASE: case.call},
                                  args.rounds, f"{args.size}² per image")
    eager, ov = timings[COMPARED_WITH]["cpu_median_s"], timings[CASE]["cpu_median_s"]
    results = {"started": started.isoformat(timespec="seconds"), "kind": "openvino-image",
               "command": "python -m benchmarks.openvino_image" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
               "model": described, "machine": machine(),
               "settings": f"{args.size}x{args.size}, {request.sampler_name} {args.steps} steps CFG {request.cfg_scale:g}",
               "timings": timings, "speedup_vs_eager": round(eager / ov, 2),
               "pixel_difference_vs_eager": pixel_difference(images[CASE], images[COMPARED_WITH]), **case.setup}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}-openvino-image.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1, default=str))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
