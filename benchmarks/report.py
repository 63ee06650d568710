"""docs/performance.md from one results file: every target of issue 16 with its measured figure."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _case(results: dict[str, Any], group: str, case: str, key: str = "ratio_cpu") -> float | None:
    return results.get("groups", {}).get(group, {}).get("cases", {}).get(case, {}).get(key)


def _fmt(value: float | None, template: str) -> str:
    return "not measured in this run" if value is None else template.format(value)


def _speedup(results: dict[str, Any], group: str, case: str, over: str = "studio") -> float | None:
    base, other = _case(results, group, over), _case(results, group, case)
    return None if base is None or not other else base / other


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows."""
    memory = results.get("load_memory", {})
    fp16, fp32 = memory.get("sd15 fp16 file, auto", {}), memory.get("sd15 fp32 file, auto", {})
    bare_key = next((c for c in results["groups"].get("sd15/256", {}).get("cases", {}) if c.startswith("bare")), "")
    studio_over_bare = [_case(results, g, "studio") for g in results["groups"] if g.startswith("default/")
                        and g != "default/previews"]
    cache3 = _speedup(results, "sd15/256", "studio cache every 3")
    cache2 = _speedup(results, "sd15/256", "studio cache every 2")
    nchw = _case(results, "sd15/256", "studio without channels_last")
    channels_last = nchw / _case(results, "sd15/256", "studio") if nchw else None
    approx = results["groups"].get("default/previews", {}).get("cases", {}).get("Approx cheap", {})
    full = results["groups"].get("default/previews", {}).get("cases", {}).get("Full", {})
    rows = [
        ("SD1.5 load peak, auto dtype ≤ 4.5 GB (fp16 file / fp32 file)",
         f"{fp16.get('peak_mb', 0) / 1024:.2f} GB / {fp32.get('peak_mb', 0) / 1024:.2f} GB" if fp16 else "not measured",
         _verdict(fp16 and max(fp16["peak_mb"], fp32.get("peak_mb", 0)) <= 4.5 * 1024)),
        ("Load peak ≤ 1.1 × resident after load (what the load added)",
         f"{fp16.get('load_delta_ratio', 0):.2f} × / {fp32.get('load_delta_ratio', 0):.2f} ×" if fp16 else "not measured",
         _verdict(fp16 and max(fp16["load_delta_ratio"], fp32.get("load_delta_ratio", 9)) <= 1.1)),
        ("Studio adds nothing per image over bare diffusers (default model, each sampler; CPU-time ratio)",
         ", ".join(f"{v:.2f}" for v in studio_over_bare if v is not None) or "not measured",
         _verdict(studio_over_bare and max(v for v in studio_over_bare if v is not None) <= 1.1)),
        ("SD1.5 256²: studio (auto dtype) vs diffusers' fp32 default, per image",
         _fmt(_case(results, "sd15/256", "studio"), "{:.2f} × the fp32 time"),
         _verdict(_case(results, "sd15/256", "studio") is not None and _case(results, "sd15/256", "studio") < 0.5)),
        ("SD1.5 256²: studio vs the same pipeline called bare",
         _fmt(_speedup(results, "sd15/256", "studio", bare_key) and 1 / _speedup(results, "sd15/256", "studio", bare_key),
              "{:.2f} ×"), ""),
        ("Step caching every 3 ≥ 1.8 × per image (SD1.5 256²)", _fmt(cache3, "{:.2f} × faster"),
         _verdict(cache3 is not None and cache3 >= 1.8)),
        ("Step caching every 2 (SD1.5 256²)", _fmt(cache2, "{:.2f} × faster"), ""),
        ("channels_last (UNet + VAE, SD1.5 256²)", _fmt(channels_last, "{:.2f} × faster"),
         "on by default for bf16 on CPU"),
        ("Live preview cost < 2 % of step time at every 5 steps (Approx cheap / Full VAE)",
         f"{approx.get('cost_at_every_5_steps', 0) * 100:.2f} % / {full.get('cost_at_every_5_steps', 0) * 100:.1f} %"
         if approx else "not measured",
         _verdict(approx and approx["cost_at_every_5_steps"] < 0.02)),
        ("Preview colours vs the final decode (mean abs error of the mean colour, 0..255)",
         f"Approx cheap {approx.get('mean_colour_error', 0):.1f}, Full {full.get('mean_colour_error', 0):.1f}"
         if approx else "not measured", ""),
    ]
    rows += sdxl_rows(results)
    return rows + start_rows(results.get("starts", {})) + compile_rows(results) + openvino_rows(results) + [
        ("CUDA path: fp16, fp32 VAE retry on NaN, --medvram/--lowvram offload, SDPA",
         "no GPU here: selection logic and the NaN retry unit-tested (tests/test_cuda_path.py); "
         "`bash benchmarks/gpu_check.sh` runs the suite on CUDA (cut off at 5 min)", "not measured"),
    ]


SDXL_RESULTS = Path(__file__).resolve().parent / "sdxl_memory_results.json"


def sdxl_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The full-size SDXL single file's peaks (`python -m benchmarks.sdxl_memory`, its own results file)."""
    path = Path(results.get("sdxl_memory_file", SDXL_RESULTS))
    data = json.loads(path.read_text()) if path.is_file() else {}
    target = "SDXL single file (random full-size base, fp16 file, auto dtype), 512², 2 steps: peak ≤ 12 GB"
    if not data:
        return [(target, "not measured (`python -m benchmarks.sdxl_memory`)", "not measured")]
    load, generate = data["load"], data["generate"]
    runs = data.get("runs", [])
    spread = (f"worst of {len(runs)} fresh processes, generate peaks "
              f"{min(r['generate_peak_gb'] for r in runs):.2f}–{max(r['generate_peak_gb'] for r in runs):.2f} GiB; "
              if len(runs) > 1 else "")
    trimmed = data.get("resident_after_malloc_trim_gb")
    return [(target,
             f"peak {load['peak_gb']:.2f} GiB load / {generate['peak_gb']:.2f} GiB generate "
             f"({spread}{data['dtype']}, resident {load['after_gb']:.2f} GiB after load"
             + (f", {trimmed:.2f} GiB after malloc_trim" if trimmed else "")
             + f"; load {load['wall_s']:.0f} s, image {generate['wall_s']:.0f} s wall; "
             f"`{data['command']}`, {data['started'][:10]})",
             _verdict(max(load["peak_gb"], generate["peak_gb"]) * 2**30 <= data.get("target_gb", 12) * 1e9))]


def start_rows(starts: dict[str, Any]) -> list[tuple[str, str, str]]:
    cli, app = starts.get("cli_generate"), starts.get("app_to_http_200")
    return [
        ("CLI one default-model image (`python -m studio generate`, 64², 20 steps) ≤ 4 s CPU",
         f"{cli['cpu_s']:.1f} s CPU ({cli['wall_s']:.1f} s wall)" if cli else "not measured",
         _verdict(cli and cli["cpu_s"] <= 4)),
        ("`python app.py` to HTTP 200 ≤ 8 s CPU",
         f"{app['cpu_s']:.1f} s CPU ({app['wall_s']:.1f} s wall)" if app else "not measured",
         _verdict(app and app["cpu_s"] <= 8)),
    ]


def compile_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """--compile's first and second start (this run's, else the newest `benchmarks.starts --compile` file)."""
    starts, source = results.get("starts", {}), "this run"
    if "cli_generate_compile_first_start" not in starts:
        starts, source = _newest(results, "starts", "cli_generate_compile_first_start")
    if not starts:
        return [("--compile: compile cache on disk, a restart does not pay the compile again",
                 "not in this run (`python -m benchmarks.starts --compile`; see the notes for the last figures: "
                 "first start 99 s CPU, second 34 s, without --compile 11 s)", "partly: the trace is paid again")]
    first, second = starts["cli_generate_compile_first_start"], starts["cli_generate_compile_second_start"]
    eager = starts.get("cli_generate_no_compile_same_size", {})
    return [("--compile: compile cache on disk, a restart does not pay the compile again "
             "(CLI, default model 64², 2 steps, CPU time incl. the C++ compiler)",
             f"first start {first['cpu_s']:.0f} s, second start {second['cpu_s']:.0f} s, without --compile "
             f"{eager.get('cpu_s', 0):.0f} s ({source})",
             _verdict(second["cpu_s"] < first["cpu_s"] / 2))]


def openvino_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The newest `python -m benchmarks.openvino_compare` (plain openvino, --backend openvino)."""
    data, source = _newest(results, "openvino", "per_step_cpu_s")
    if not data:
        return [("OpenVINO (--backend openvino, plain openvino) vs the studio's bf16 path",
                 "not in this run (`python -m benchmarks.openvino_compare`); optimum-intel is not used: "
                 + OPENVINO_BLOCKED, "not measured")]
    step, diff = data["per_step_cpu_s"], data["difference_vs_eager_fp32"]
    shown = "; ".join(f"{name} {seconds:.2f} s ({data['speed_vs_eager_bf16'][name]:.2f} ×, difference "
                      f"{diff.get(name, 0):.3f})" for name, seconds in step.items())
    return [(f"OpenVINO {data['openvino'].split('-')[0]} (--backend openvino) vs eager, SD1.5-size UNet step "
             f"(CFG batch 2) at {data['size']}²",
             f"CPU s per step (speed vs eager bf16, output difference vs eager fp32): {shown}; {data['rounds']} "
             f"interleaved rounds, medians, load {data['load_average'][0]:.1f} ({source})",
             "faster, opt-in; auto stays eager" if data["speed_vs_eager_bf16"].get("openvino bf16", 0) > 1
             else "not faster: auto stays eager")]


OPENVINO_BLOCKED = (
    "optimum-intel does not work with our pins (checked in a separate venv, 2026-12-02): its newest release, "
    "2.2.0, needs huggingface-hub<1.22 while diffusers 0.42 needs huggingface-hub>=1.32 (pip: ResolutionImpossible), "
    "and transformers<5.6 (with our 5.24 it fails to import: VisionRotaryEmbedding is gone from qwen2_vl); pip then "
    "backtracks to optimum-intel 1.15.0, which installs but cannot import (`openvino.runtime`, removed in "
    "OpenVINO 2026; with OpenVINO 2025.4, `transformers.onnx`, removed in transformers 5)")


def _newest(results: dict[str, Any], kind: str, key: str) -> tuple[dict[str, Any], str]:
    folder = Path(results.get("results_dir", Path(__file__).resolve().parent / "results"))
    for path in sorted(folder.glob(f"*-{kind}.json"), reverse=True):
        data = json.loads(path.read_text())
        if key in data:
            return data, f"`{path.name}`"
    return {}, ""


def _verdict(ok: Any) -> str:
    return "met" if ok else "missed"


NOTES = [
    "## Notes",
    "",
    "**`--compile`** (opt-in) compiles the UNet with torch.compile (inductor, frozen weights) on the first image "
    "of each size; the compiled graph is kept in `.cache/inductor` (TORCHINDUCTOR_CACHE_DIR), so a restart skips "
    "code generation and the C++ builds and pays only dynamo's tracing. oneDNN weight pre-packing is off: with it "
    "the graph is not cacheable on disk (inductor bypasses its FX graph cache for mkldnn constants) and every "
    "restart would pay the whole compile (~25 s CPU on the tiny default model, minutes on SD1.5-size models). "
    "Freezing also makes torch skip its AOTAutograd cache (by design), so the second start still traces: "
    "measured with `python -m studio generate --compile --threads 1` (default model, 64², 2 steps, load average "
    "~12): first start 99 s CPU (incl. the C++ compiler), second start 34 s, without --compile 11 s. "
    "Step caching (Cache every 2/3) swaps the UNet's forward for the run, so with --compile it re-traces. "
    "It pays off on a long-running server that makes many images at a few sizes; never for one CLI image.",
    "",
    "**Fast start**: `python -m studio generate` imports no gradio/fastapi/UI and no detector (controlnet-aux, "
    "mediapipe, timm, OpenCV load on first use; `tests/test_cli_start.py`). What remains is the libraries' own "
    "import cost: `from diffusers import StableDiffusionPipeline` alone is ~6.5 s CPU here, because diffusers 0.42 "
    "imports torch._dynamo (diffusers.utils.torch_utils), peft whenever it is installed "
    "(diffusers.hooks.layerwise_casting), and transformers.modeling_utils pulls scipy and torchvision "
    "(its object-detection losses). The studio imports peft itself only when a LoRA is used. "
    "On a busy machine, OpenMP's active waiting dominates: the same CLI image took 24.7 s CPU with 2 threads "
    "(default) but 9.7 s with OMP_WAIT_POLICY=PASSIVE (9.4 s with --threads 1) at load average ~11; set "
    "OMP_WAIT_POLICY=PASSIVE or --threads 1 when the CPU is shared. At load average ~4 (`python -m benchmarks.starts`): "
    "CLI image 11.2 s CPU / 17.1 s wall by default, 8.0 s CPU / 8.1 s wall with OMP_WAIT_POLICY=PASSIVE; app.py to "
    "HTTP 200 10.5 s CPU either way.",
    "",
    "**OpenVINO** (`--backend openvino`, Settings → Optimizations → backend; `pip install -e \".[openvino]\"`): "
    "plain `openvino` (optimum-intel does not install with our pins) converts the UNet as it is, LoRAs included, "
    "with dynamic batch, size and prompt length, and caches the IR in `.cache/openvino/<key>` (key: model hash, "
    "dtype, a digest of the weights, the LoRA adapters' scales, the openvino version); it runs behind the same "
    "diffusers pipeline with the bf16 precision hint where the CPU has AVX512-BF16/AMX, else f32. Converting "
    "SD1.5 costs ~22 s CPU and ~5.6 GiB once per model and LoRA set; the compiled UNet adds its weights "
    "(~1.7 GiB in bf16) beside the eager ones. ControlNet, reference/IP-Adapter, Cache, token merging, the "
    "refiner and LyCORIS are refused with a message. `auto` stays eager: OpenVINO's image is not eager's (mean "
    "difference 0.023), so switching by itself would break pixel-exact reproduction, and the conversion and "
    "the refusals are not a default's to impose. The VAE decoder and the CLIP text encoder(s) run on OpenVINO too, each its own IR "
    "in the same cache (keyed by its own weights; the text encoders' key includes the embedding table, so a "
    "textual-inversion embedding is its own conversion; all hidden states are outputs, so clip skip works); the "
    "VAE encoder (img2img, hires) stays eager. Measured with `python -m benchmarks.openvino_compare --parts "
    "--size 512` (SD1.5-size random model, eager bf16 vs OpenVINO bf16, process CPU s, 3 interleaved rounds, "
    "medians, load ~7–11, peak 4.0 GiB; `20261207T045542Z-openvino-parts.json`): VAE decode of one 512² image "
    "18.11 s → 14.09 s (1.29 ×; at 256²: 4.83 → 3.38 s, 1.43 ×; difference vs eager fp32 0.024 eager bf16, "
    "0.022 OpenVINO bf16); text encoder, prompt + negative (batch 2, 77 tokens) 1.12 s → 0.18 s (6.0 ×; "
    "difference 0.011 / 0.007); conversion ~14 s CPU each, once. "
    "`python -m benchmarks.openvino_compare [--size 512] [--full]` measures it (eager fp32 and OpenVINO f32 "
    "with --full, ~7 GiB more).",
    "",
    "**SDXL memory** (`python -m benchmarks.sdxl_memory`, ~5 min): SDXL base at full size (2.57 G UNet weights) "
    "with random weights, built from studio/configs/sdxl and written as an A1111 fp16 single file (6.46 GiB) in "
    "the bench cache, then loaded with Engine/ModelManager (dtype auto: bf16 here) and one 512² image made, each "
    "in a fresh process (3 by default, the worst reported; results in `benchmarks/sdxl_memory_results.json`, the "
    "file deleted afterwards). Peaks are VmHWM, reset before each phase. The peaks vary by up to ~1.8 GiB between"
    " identical runs (10 measuring processes on 2026-12-02: load 7.65–9.25 GiB, generate 8.06–9.92 GiB): the "
    "weights are 6.46 GiB and the resident set after the image and a final malloc_trim is always 7.39 GiB, but "
    "the resident set right after the load is 0.1 to 1.7 GiB above that, freed heap that glibc keeps (the studio "
    "trims on unload, not after a load).",
    "",
    "**CUDA**: fp16 by default; a half-precision VAE decode that comes out NaN/inf is decoded again in fp32 "
    "(never a black PNG); `--medvram` = diffusers' model CPU offload, `--lowvram` = sequential CPU offload; "
    "attention through PyTorch SDPA (diffusers' AttnProcessor2_0). `bash benchmarks/gpu_check.sh` checks it all "
    "on a GPU in under 5 minutes.",
    "",
]


def _issue26_section(docs: Path) -> list[str]:
    """The page's issue-26 section (benchmarks/issue26.py writes it from its own run): kept as it is."""
    from benchmarks.issue26_doc import existing_section

    kept = existing_section(docs.read_text()) if docs.is_file() else ""
    return kept.rstrip("\n").split("\n") + [""] if kept else []


def write_performance_doc(results: dict[str, Any], results_path: Path, docs: Path) -> None:
    results = {**results, "results_dir": results_path.parent}
    m = results["machine"]
    lines = [
        "# Performance",
        "",
        f"Generated by `{results['command']}` on {results['started']} "
        f"(results: `benchmarks/results/{results_path.name}`, {results['duration_s']:.0f} s).",
        "",
        f"Machine: {m['cpu']} ({', '.join(m['flags'])}), {m['logical_cpus']} logical CPUs, "
        f"{m['torch_threads']} torch threads, load average at start {m['load_average'][0]:.1f}; "
        f"Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, transformers {m['transformers']}.",
        "",
        "Every speed figure is a ratio of median CPU times to a baseline measured in the same process, "
        "the cases interleaved rep by rep (absolute times on a shared machine mean little).",
        "",
        "| Target | Measured | |",
        "|---|---|---|",
        *[f"| {target} | {measured} | {verdict} |" for target, measured, verdict in targets(results)],
        "",
        "Recommended checkpoint form: **fp16 `.safetensors`** — it loads straight into bf16/fp16 with the "
        "smallest read; fp32 files work too (read tensor by tensor, never as a whole float32 copy).",
        "",
        *_issue26_section(docs),
        *NOTES,
        "## All groups",
        "",
    ]
    for group, data in results["groups"].items():
        lines += [f"### {group}", "", f"{data.get('settings', '')}; baseline: {data['baseline']}", "",
                  "| Case | CPU s (min / median / max) | Wall s (median) | Ratio (CPU) |", "|---|---|---|---|"]
        for case, entry in data["cases"].items():
            cpu = entry["cpu_s"]
            lines.append(f"| {case} | {cpu['min']} / {cpu['median']} / {cpu['max']} | {entry['wall_s']['median']} "
                         f"| {entry['ratio_cpu']} |")
        lines.append("")
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("\n".join(lines) + "\n")
