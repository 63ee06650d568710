"""Start-up costs in CPU time (user + system of the process and its children), each in a fresh process:

- `python -m studio generate` of one default-model image (64², 20 steps: the CLI's defaults);
- `python app.py` until its page answers HTTP 200 (the process is then stopped);
- with `--compile`: the first start (cold compile cache) and the second (same cache folder);
- with `--floor`: the CLI's cold image against the import floor (a process that only imports torch,
  diffusers' SD pipeline and transformers' CLIP), with the studio's passive OpenMP waiting and with
  OMP_WAIT_POLICY=ACTIVE (the spinning it replaced), interleaved over rounds, medians.

    python -m benchmarks.starts [--compile] [--floor [--rounds N]]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            **extra}


def cli_generate(root: Path, *flags: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """CPU and wall seconds of one `python -m studio generate` (default model, its default size and steps)."""
    before, wall = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "studio", "generate", "--prompt", "a red circle", "--seed", "1",
                    "--safe-mode", "--out", str(root / "out"), "--models-dir", str(root / "models"), *flags],
                   check=True, capture_output=True, cwd=PROJECT, env=env or _env(), timeout=1800)
    return {"cpu_s": round(_children_cpu() - before, 2), "wall_s": round(time.perf_counter() - wall, 2)}


FLOOR_IMPORTS = ("import torch; from diffusers import StableDiffusionPipeline; "
                 "from transformers import CLIPTextModel, CLIPTokenizer")


def _without_policy() -> dict[str, str]:
    """The environment of a user who set no OMP_WAIT_POLICY (the entry point chooses)."""
    return {key: value for key, value in _env().items() if key != "OMP_WAIT_POLICY"}


def import_floor(env: dict[str, str] | None = None) -> dict[str, float]:
    """CPU and wall seconds of a process that only imports what any image needs."""
    before, wall = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR_IMPORTS], check=True, capture_output=True, cwd=PROJECT,
                   env=env or _without_policy(), timeout=600)
    return {"cpu_s": round(_children_cpu() - before, 2), "wall_s": round(time.perf_counter() - wall, 2)}


def floor_comparison(root: Path, rounds: int = 3) -> dict[str, Any]:
    """The CLI's cold image vs the import floor, one of each per round (interleaved), medians."""
    import statistics

    cases = {
        "import floor": lambda: import_floor(),
        "cli generate (studio: OMP_WAIT_POLICY=PASSIVE)": lambda: cli_generate(root, env=_without_policy()),
        "cli generate, OMP_WAIT_POLICY=ACTIVE": lambda: cli_generate(root, env={**_without_policy(),
                                                                               "OMP_WAIT_POLICY": "ACTIVE"}),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            samples[name].append(call()["cpu_s"])
    floor = statistics.median(samples["import floor"])
    return {"rounds": rounds, "load_average": list(os.getloadavg()),
            "cpu_s": {name: {"median": round(statistics.median(v), 2), "all": v} for name, v in samples.items()},
            "ratio_to_floor": {name: round(statistics.median(v) / floor, 2) for name, v in samples.items()}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_to_http_200(root: Path) -> dict[str, float]:
    """CPU seconds `python app.py` spends until its page answers 200 (read from /proc before stopping it)."""
    port = _free_port()
    wall = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--no-browser", "--safe-mode", "--port", str(port),
                                "--outputs-dir", str(root / "outputs"), "--models-dir", str(root / "models")],
                               cwd=PROJECT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        wall = time.perf_counter() - wall
        cpu = _process_cpu(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(value) for value in fields[11:15]) / ticks  # utime, stime, cutime, cstime


def measure(compile_starts: bool = False, floor_rounds: int = 0) -> dict[str, Any]:
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        cli_generate(root)  # warm the OS file cache: every figure below is a warm-disk start
        results: dict[str, Any] = {"cli_generate": cli_generate(root), "app_to_http_200": app_to_http_200(root)}
        if floor_rounds:
            results["cli_vs_import_floor"] = floor_comparison(root, floor_rounds)
        if compile_starts:
            env = _env(TORCHINDUCTOR_CACHE_DIR=str(root / "inductor"))
            small = ("--compile", "--steps", "2", "--width", "64", "--height", "64")
            results["cli_generate_compile_first_start"] = cli_generate(root, *small, env=env)
            results["cli_generate_compile_second_start"] = cli_generate(root, *small, env=env)
            results["cli_generate_no_compile_same_size"] = cli_generate(root, *small[1:])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also the first and second start with --compile")
    parser.add_argument("--floor", action="store_true", help="also the CLI against the import floor, interleaved")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --floor")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results = {"started": started, "kind": "starts", "command": "python -m benchmarks.starts" + " --compile" * args.compile,
               "load_average": os.getloadavg(), **measure(args.compile, args.rounds if args.floor else 0)}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{started}-starts.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
