"""docs/performance.md carries every issue-16 target, including start-up, compile, OpenVINO and CUDA,
and issue 26's section generated from one `benchmarks.run --issue26` run (kept by the full run's page)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import issue26
from benchmarks.report import write_performance_doc

OLD_PAGE = "# Performance\n\nintro\n\n## Issue 26 (hand-written)\n\nold figures\n\n## Notes\n\nkept notes\n"

MACHINE = {"cpu": "Xeon", "flags": ["amx_bf16"], "logical_cpus": 2, "torch_threads": 2, "load_average": [9.0, 9, 9],
           "python": "3.11", "torch": "2.14.1", "diffusers": "0.42.1", "transformers": "5.24.0"}


def test_start_compile_openvino_and_cuda_rows(tmp_path: Path):
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "20260101T000000Z-starts.json").write_text(json.dumps({
        "cli_generate_compile_first_start": {"cpu_s": 99.0, "wall_s": 1},
        "cli_generate_compile_second_start": {"cpu_s": 34.0, "wall_s": 1},
        "cli_generate_no_compile_same_size": {"cpu_s": 11.0, "wall_s": 1}}))
    sdxl = tmp_path / "sdxl.json"
    sdxl.write_text(json.dumps({"started": "2026-12-02T18:00:00+00:00", "command": "python -m benchmarks.sdxl_memory",
                                "dtype": "bfloat16", "target_gb": 12.0,
                                "load": {"peak_gb": 9.0, "after_gb": 8.8, "wall_s": 24.0},
                                "generate": {"peak_gb": 11.5, "wall_s": 33.0}}))
    results = {"started": "now", "kind": "quick", "command": "python -m benchmarks.run --quick", "duration_s": 5,
               "machine": MACHINE, "groups": {}, "sdxl_memory_file": str(sdxl),
               "starts": {"cli_generate": {"cpu_s": 3.5, "wall_s": 4.0}, "app_to_http_200": {"cpu_s": 9.0, "wall_s": 12}}}
    docs = tmp_path / "performance.md"
    docs.write_text(OLD_PAGE)
    write_performance_doc(results, results_dir / "20260101T000100Z-quick.json", docs)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in docs.read_text().splitlines() if line.startswith("| ")}
    cli = next(v for k, v in rows.items() if k.startswith("CLI one default-model image"))
    app = next(v for k, v in rows.items() if k.startswith("`python app.py` to HTTP 200"))
    assert "3.5 s CPU" in cli and cli.endswith("| met |")
    assert "9.0 s CPU" in app and app.endswith("| missed |")
    compiled = next(v for k, v in rows.items() if k.startswith("--compile"))
    assert "first start 99 s, second start 34 s" in compiled and "20260101T000000Z-starts.json" in compiled
    assert any(k.startswith("OpenVINO") and "huggingface-hub" in v for k, v in rows.items())
    sdxl_row = next(v for k, v in rows.items() if k.startswith("SDXL single file"))
    assert "peak 9.00 GiB load / 11.50 GiB generate" in sdxl_row and sdxl_row.endswith("| missed |")  # 11.5 GiB > 12e9 B
    assert any(k.startswith("CUDA path") and "gpu_check.sh" in v for k, v in rows.items())
    assert "## Issue 26 (hand-written)\n\nold figures\n" in docs.read_text()  # issue26.py's section is kept


def test_openvino_row_from_openvino_compare_measure():
    from benchmarks.issue26_doc import openvino_row

    cases = ("eager bf16", "eager fp32", "openvino bf16", "openvino f32")
    data = {"size": 512, "rounds": 1, "steps_per_round": 1, "conversion_cpu_s": 21.7,
            "per_step_cpu_s": dict(zip(cases, (11.6, 17.4, 9.0, 17.3))),
            "speed_vs_eager_bf16": dict(zip(cases, (1.0, 0.67, 1.29, 0.67))),
            "difference_vs_eager_fp32": dict(zip(cases, (0.012, 0.0, 0.027, 0.001)))}
    name, measured, verdict = openvino_row(data)
    assert name.startswith("OpenVINO") and verdict == "faster than eager bf16"
    assert "openvino bf16 9.00 s (1.29 × eager bf16's speed, output difference vs fp32 0.027)" in measured
    assert "conversion 22 s CPU once" in measured
    assert openvino_row({"error": "not in this run: no openvino"})[2] == "not in this run"


def _rows(text: str) -> dict[str, str]:
    return {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}


@pytest.mark.slow
def test_issue26_section_from_one_run_on_the_default_model(tmp_path: Path):
    plan = issue26.Plan("issue26-smoke", "default", 64, (64, 72), steps=2, rounds=1, step_rounds=1, start_rounds=0,
                        openvino=False, tome_image_sizes=(64,))
    docs = tmp_path / "performance.md"
    docs.write_text(OLD_PAGE)
    results, path = issue26.run(plan, tmp_path / "results", docs, "python -m benchmarks.run --issue26 --smoke")

    assert path.parent == tmp_path / "results" and json.loads(path.read_text())["per_image"] == results["per_image"]
    cases = [row["case"] for row in results["per_image"]["rows"]]
    assert cases == ["diffusers fp32 default", "studio default", "few-step", "+ token merging 0.5",
                     "+ DeepCache every 2"]  # the fast-cpu preset's accelerations, one at a time
    assert results["per_image"]["openvino"] == {"error": "not in this run (--smoke)"}  # no OpenVINO image in a smoke
    studio = results["per_image"]["rows"][1]
    assert studio["pixel_difference_vs_previous"] < 1.0  # fp32 default model: the studio is diffusers' image
    merged = results["token_merging"]["sizes"]["64"]
    assert merged["off"]["pixel_difference_vs_off"] == 0 and merged["ToMe 0.5"]["pixel_difference_vs_off"] > 0
    per_step = results["token_merging"]["sizes"]["72"]  # per UNet step only: no image, the output's change
    assert per_step["ToMe 0.5"]["per_image"] is None and per_step["ToMe 0.5"]["unet_output_difference_vs_off"] > 0
    uncond = results["negative_guidance"]["cases"]
    assert list(uncond) == ["off", "s_min_uncond 1", "s_min_uncond 3"] and uncond["off"]["pixel_difference_vs_off"] == 0
    for case in ("s_min_uncond 1", "s_min_uncond 3"):  # a halved UNet call changes the image, none leaves it alone
        assert uncond[case]["halved_unet_calls"] <= 1
        assert (uncond[case]["pixel_difference_vs_off"] > 0) == (uncond[case]["halved_unet_calls"] > 0)

    text = docs.read_text()
    assert "old figures" not in text and text.startswith("# Performance\n\nintro\n")
    assert text.rstrip().endswith("## Notes\n\nkept notes")
    assert f"results: `benchmarks/results/{path.name}`" in text and "load average at start" in text
    rows = _rows(text)
    first = [key for key in rows if key.startswith("64² per image")]
    assert first[0].startswith("64² per image, 2 steps: diffusers fp32 default → studio default")
    assert "fast-cpu" in first[1] and "goal ≥ 5 ×" in rows[first[1]]
    assert any(key.startswith("Few-step (LCM 4 steps, CFG 1) vs 2 steps") for key in rows)
    assert next(v for k, v in rows.items() if k.startswith("OpenVINO")).endswith("| not in this run |")
    assert "ToMe 0.3" in rows["Token merging at 64² (vs off)"] and "ToMe 0.5" in rows["Token merging at 64² (vs off)"]
    assert "per image" not in rows["Token merging at 72² (vs off)"] and "(per step only)" in rows["Token merging at 72² (vs off)"]
    assert next(v for k, v in rows.items() if k.startswith("Start-up")).endswith("| not in this run |")
    assert "s_min_uncond 3: " in next(v for k, v in rows.items() if k.startswith("Negative Guidance minimum sigma"))
    for case in cases:
        assert case in rows  # the per-image table

    # rewritten from the results file alone, the section is the same
    again = tmp_path / "again.md"
    again.write_text(OLD_PAGE)
    assert issue26.main(["--from-results", str(path), "--docs", str(again)]) == 0
    assert again.read_text() == text

    # groups measured by a second process side by side (--groups) fill the ones the first lacks, said so
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({k: v for k, v in results.items() if k != "token_merging"}))
    second.write_text(json.dumps({**results, "plan": {**results["plan"], "groups": ["token_merging"]}}))
    both = tmp_path / "both.md"
    both.write_text(OLD_PAGE)
    assert issue26.main(["--from-results", str(first), str(second), "--docs", str(both)]) == 0
    combined = both.read_text()
    assert "token merging from `benchmarks/results/second.json`" in combined
    assert _rows(combined)["Token merging at 64² (vs off)"] == rows["Token merging at 64² (vs off)"]


def test_openvino_per_image_row_against_the_studio_default():
    from benchmarks.issue26_doc import image_rows, per_image_table

    def row(case: str, cpu: float, versus: str | None, difference: float) -> dict:
        base = versus and {"diffusers fp32 default": 447.0, "studio default": 244.5, "few-step": 37.4}[versus]
        return {"case": case, "what": "", "cpu_median_s": cpu, "compared_with": versus,
                "speedup_vs_diffusers_fp32": round(447.0 / cpu, 2), "speedup_vs_previous": round(base / cpu, 2) if base else 1.0,
                "pixel_difference_vs_previous": difference}

    ov = "OpenVINO (UNet, VAE decoder, text encoders)"
    table = [row("diffusers fp32 default", 447.0, None, 0.0), row("studio default", 244.5, "diffusers fp32 default", 0.72),
             row("few-step", 37.4, "studio default", 17.7), row("+ token merging 0.5", 30.0, "few-step", 0.5),
             row(ov, 200.0, "studio default", 1.25)]
    setup = {"openvino": "2026.4.1-22982", "precision_hint": "bf16", "eager_dtype": "bfloat16",
             "converted": {"unet": True, "vae_decoder": False, "text_encoder": False},
             "conversion_total_cpu_s": 30.2, "compile_total_cpu_s": 2.4}
    results = {"plan": {"size": 512, "steps": 20}, "fast_preset": {"steps": 4},
               "per_image": {"settings": "512x512", "rows": table, "fastest": "+ token merging 0.5",
                             "fastest_pixel_difference_vs_studio_default": 17.9, "openvino": setup}}
    lines = per_image_table(results)
    line = next(line for line in lines if line.startswith(f"| {ov} |"))
    # against the studio default (not the row above it), with its × diffusers fp32 and pixel difference
    assert "| 200.0 | 2.23 × | 1.22 × (vs studio default) | 1.25 (vs studio default) |" in line
    assert "| 1.25 × | 0.50 |" in next(line for line in lines if line.startswith("| + token merging 0.5 |"))
    assert any("converting unet cost 30 s CPU" in line and "compiling them 2.4 s" in line for line in lines)
    summary = next(r for r in image_rows(results) if r[0].startswith("512² per image, 20 steps: OpenVINO"))
    assert "244.5 s → 200.0 s CPU: **1.22 ×** eager's speed, 2.23 × diffusers fp32; pixel difference 1.25" in summary[1]
    assert summary[2] == "faster than eager"

    without = {**results["per_image"], "rows": table[:-1], "openvino": {"error": "not in this run (--smoke)"}}
    assert "**OpenVINO per image**: not in this run (--smoke)" in per_image_table({**results, "per_image": without})
    assert not any("OpenVINO" in r[0] for r in image_rows({**results, "per_image": without}))
