"""docs/performance.md carries every issue-16 target, including start-up, compile, OpenVINO and CUDA."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report import write_performance_doc

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
