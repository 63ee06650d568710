"""`--backend openvino` (plain openvino, no optimum) against eager torch, per UNet step, on the
SD1.5-size random model of benchmarks/workloads.py:

    PYTHONPATH=$PWD python -m benchmarks.openvino_compare [--size 512] [--steps 20] [--rounds 3] [--full]
    PYTHONPATH=$PWD python -m benchmarks.openvino_compare --parts [--size 512] [--rounds 3]

`--parts`: the VAE decoder (one decode of a size² image) and the text encoder (one prompt and its
negative) instead of the UNet, each eager bf16 against OpenVINO bf16 (`measure_parts`; ~3 GiB).

Eager bf16 (the studio's CPU default for SD1.5-size models where the CPU has bf16: channels last)
and OpenVINO with the bf16 precision hint, interleaved round by round in this one process and timed
in process CPU time; with --full also eager fp32 and OpenVINO f32 as a second interleaved pair (the
four at once need ~11 GiB for SD1.5). One "step" is one UNet call at batch 2
(CFG's two halves) on size/8 latents and 77 tokens, one call per case and round (at least 3 rounds);
`steps` only scales the step to an image's UNet cost (steps x per step). Each case's
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


def measure(size: int = 512, steps: int = 20, rounds: int = 3, full: bool = False) -> dict[str, Any]:
    """Per-step CPU seconds of eager bf16 and OpenVINO bf16 at `size`² (interleaved, at least 3 rounds),
    their ratio, the UNet's share of a `steps`-step image, and
    each one's output difference to eager fp32. `full`: then eager fp32 and OpenVINO f32 too, as a
    second interleaved pair (SD1.5 in fp32 twice: ~7 GiB more; run it on a machine with the room)."""
    from studio.checkpoints import openvino_unet
    from studio.checkpoints.devices import configure_threads

    configure_threads()
    rounds = max(rounds, 3)  # one UNet call each: cheap enough for a median of 3 even when images get 1 round
    unet, model_hash = _load_unet()
    from benchmarks.workloads import BENCH_CACHE

    cpu = time.process_time()
    xml, converted = openvino_unet.converted_ir(unet, BENCH_CACHE / "cache" / "openvino", model_hash)
    conversion_cpu = round(time.process_time() - cpu, 1) if converted else None
    gc.collect()

    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, unet.config.in_channels, size // 8, size // 8, generator=generator)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, generator=generator)
    timestep = torch.tensor(500)
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        reference = unet(sample, timestep, text).sample.float()  # eager fp32: what every case is compared with

    def case(name: str, model: Any, dtype: torch.dtype) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                outputs[name] = model(sample.to(dtype), timestep, text.to(dtype)).sample
        return run

    def compiled(eager: Any, hint: str) -> Any:
        cpu = time.process_time()
        model = openvino_unet.OpenVinoUNet(eager, xml, hint)
        compile_cpu[hint] = round(time.process_time() - cpu, 2)
        return model

    compile_cpu: dict[str, float] = {}
    # The studio's CPU bf16 path (pick_dtype + channels_last) and OpenVINO's bf16 hint.
    bf16 = copy.deepcopy(unet).to(torch.bfloat16).to(memory_format=torch.channels_last)
    if not full:
        del unet
        gc.collect()
    groups = [interleaved({"eager bf16": case("eager bf16", bf16, torch.bfloat16),
                           "openvino bf16": case("openvino bf16", compiled(bf16, "bf16"), torch.float32)},
                          rounds, "eager bf16")]
    if full:
        del bf16
        gc.collect()
        groups.append(interleaved({"eager fp32": case("eager fp32", unet, torch.float32),
                                   "openvino f32": case("openvino f32", compiled(unet, "f32"), torch.float32)},
                                  rounds, "eager fp32"))
    cases = {name: entry for group in groups for name, entry in group["cases"].items()}
    per_step = {name: round(entry["cpu_s"]["median"], 3) for name, entry in cases.items()}
    speed = {name: round(per_step["eager bf16"] / value, 3) for name, value in per_step.items()}
    difference = {name: _difference(out, reference) for name, out in outputs.items()}
    return {
        # the headline figures as plain numbers (benchmarks/issue26_doc.py shows the top-level numbers)
        "eager_bf16_step_cpu_s": per_step["eager bf16"], "openvino_bf16_step_cpu_s": per_step["openvino bf16"],
        "openvino_bf16_speedup_vs_eager_bf16": speed["openvino bf16"],
        "openvino_bf16_difference": difference["openvino bf16"], "eager_bf16_difference": difference["eager bf16"],
        "per_image_unet_cpu_s": {name: round(value * steps, 1) for name, value in per_step.items()},
        "kind": "openvino", "size": size, "image_steps": steps, "rounds": rounds,
        "openvino": __import__("openvino").__version__, "precision_hint_default": openvino_unet.precision_hint(),
        "load_average": list(os.getloadavg()), "machine": machine(),
        "conversion_cpu_s": conversion_cpu, "compile_cpu_s": compile_cpu,
        "per_step_cpu_s": per_step,
        "speed_vs_eager_bf16": speed, "difference_vs_eager_fp32": difference,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "timings": groups,
    }


def _load_parts() -> tuple[Any, Any, str]:
    """The random SD1.5-size model's VAE and text encoder in fp32, and its model hash (loaded in fp16, as
    the file is: the UNet is not needed, and fp16 -> fp32 is exact)."""
    from benchmarks.workloads import BENCH_CACHE, sd15_single_file
    from studio.checkpoints.manager import ModelManager
    from studio.settings import Settings

    single = sd15_single_file(torch.float16)
    models = ModelManager(Settings(models_dir=BENCH_CACHE, cache_dir=BENCH_CACHE / "cache", dtype="float16"))
    model = models.load(single.name)
    vae, encoder, model_hash = model.pipe.vae.float().eval(), model.pipe.text_encoder.float().eval(), model.hash
    del model, models
    gc.collect()
    return vae, encoder, model_hash


def measure_parts(size: int = 512, rounds: int = 3, encoder_calls: int = 10) -> dict[str, Any]:
    """The VAE decode (post_quant_conv + decoder, one image of `size`²) and the text encoder (a prompt
    and its negative: batch 2, 77 tokens; `encoder_calls` calls per round, the figure is per call), eager
    bf16 against OpenVINO bf16, each pair interleaved over `rounds` (at least 3), in process CPU time;
    each output's difference to eager fp32 (mean |difference| / mean |fp32 output|)."""
    from benchmarks.workloads import BENCH_CACHE
    from studio.checkpoints import openvino_parts
    from studio.checkpoints.devices import configure_threads

    configure_threads()
    rounds = max(rounds, 3)
    vae, encoder, model_hash = _load_parts()
    cache = BENCH_CACHE / "cache"
    conversion_cpu: dict[str, float | None] = {}
    compile_cpu: dict[str, float] = {}

    def converted(part: str, make: Callable[[], Any]) -> Any:
        cpu = time.process_time()
        xml, made = make()
        conversion_cpu[part] = round(time.process_time() - cpu, 1) if made else None
        cpu = time.process_time()
        kind = openvino_parts.OpenVinoDecoder if part == "vae_decoder" else openvino_parts.OpenVinoTextEncoder
        model = kind(vae.decoder if part == "vae_decoder" else encoder, xml, "bf16")
        compile_cpu[part] = round(time.process_time() - cpu, 2)
        return model

    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, vae.config.latent_channels, size // 8, size // 8, generator=generator)
    ids = torch.randint(0, 49407, (2, openvino_parts.TOKENS), generator=generator)
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        reference = {"vae_decoder": vae.decode(latents).sample.float(), "text_encoder": encoder(ids)[0].float()}
    ov_decoder = converted("vae_decoder", lambda: openvino_parts.decoder_ir(vae, cache / "openvino", model_hash))
    ov_encoder = converted("text_encoder", lambda: openvino_parts.encoder_ir(encoder, cache / "openvino",
                                                                             model_hash, "text_encoder"))
    vae_bf16, encoder_bf16 = copy.deepcopy(vae).to(torch.bfloat16), copy.deepcopy(encoder).to(torch.bfloat16)

    def decode(name: str, run: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                outputs[name] = run()
        return call

    def encode(name: str, model: Any) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                for _ in range(encoder_calls):
                    outputs[name] = model(ids)[0]
        return call

    groups = {
        "vae_decoder": interleaved({
            "eager bf16": decode("vae_decoder eager bf16", lambda: vae_bf16.decode(latents.to(torch.bfloat16)).sample),
            "openvino bf16": decode("vae_decoder openvino bf16", lambda: ov_decoder(vae.post_quant_conv(latents)))},
            rounds, "eager bf16"),
        "text_encoder": interleaved({"eager bf16": encode("text_encoder eager bf16", encoder_bf16),
                                     "openvino bf16": encode("text_encoder openvino bf16", ov_encoder)},
                                    rounds, "eager bf16"),
    }
    per_call = {part: {name: round(entry["cpu_s"]["median"] / (encoder_calls if part == "text_encoder" else 1), 4)
                       for name, entry in group["cases"].items()} for part, group in groups.items()}
    return {
        "kind": "openvino-parts", "size": size, "rounds": rounds, "encoder_calls_per_round": encoder_calls,
        "openvino": __import__("openvino").__version__, "load_average": list(os.getloadavg()), "machine": machine(),
        "per_call_cpu_s": per_call,
        "speed_vs_eager_bf16": {part: round(f["eager bf16"] / f["openvino bf16"], 3) for part, f in per_call.items()},
        "difference_vs_eager_fp32": {part: {name: _difference(outputs[f"{part} {name}"], reference[part])
                                            for name in ("eager bf16", "openvino bf16")} for part in groups},
        "conversion_cpu_s": conversion_cpu, "compile_cpu_s": compile_cpu,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "timings": groups,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20, help="an image's sampling steps (scales the per-step figure)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="eager fp32 and OpenVINO f32 too (~7 GiB more memory)")
    parser.add_argument("--parts", action="store_true",
                        help="the VAE decoder and the text encoder instead of the UNet (each eager bf16 vs OpenVINO bf16)")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc)
    if args.parts:
        command = f"python -m benchmarks.openvino_compare --parts --size {args.size} --rounds {args.rounds}"
        figures = measure_parts(args.size, args.rounds)
    else:
        command = (f"python -m benchmarks.openvino_compare --size {args.size} --steps {args.steps} "
                   f"--rounds {args.rounds}" + (" --full" if args.full else ""))
        figures = measure(args.size, args.steps, args.rounds, args.full)
    results = {"started": started.isoformat(timespec="seconds"), "command": command, **figures}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}-openvino{'-parts' if args.parts else ''}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "timings")}, indent=1))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
