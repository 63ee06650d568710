"""The benchmark suite's smoke plan: structure and ratios, never speed."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import run as bench


def test_smoke_run_writes_ratios_to_a_new_results_file_and_compares(tmp_path: Path, monkeypatch) -> None:
    first, path, worse = bench.run(bench.PLANS["smoke"], tmp_path)
    assert path.is_file() and json.loads(path.read_text())["kind"] == "smoke"
    assert {"cpu", "flags", "torch_threads", "torch", "diffusers"} <= set(first["machine"])
    group = first["groups"]["default/Euler"]
    assert group["baseline"] == "bare diffusers"
    for case in ("bare diffusers", "studio"):
        entry = group["cases"][case]
        assert entry["cpu_s"]["min"] <= entry["cpu_s"]["median"] <= entry["cpu_s"]["max"]
        assert entry["ratio_cpu"] > 0 and entry["ratio_wall"] > 0
    assert group["cases"]["bare diffusers"]["ratio_cpu"] == 1.0
    assert worse == []  # nothing to compare with yet

    # A second run never overwrites; a ratio 15 % worse than the last run is a regression.
    old = json.loads(path.read_text())
    studio = old["groups"]["default/Euler"]["cases"]["studio"]
    studio["ratio_cpu"] /= 2
    studio["ratio_rounds"] = [ratio / 2 for ratio in studio["ratio_rounds"]]
    studio["cpu_s"]["median"] = max(studio["cpu_s"]["median"], 1.0)  # above the comparator's floor
    assert bench.regressions(first, old) and not bench.regressions(first, first)
