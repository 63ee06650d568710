"""Throughput of the studio on 1 and on 2 Ray Serve replicas, written to benchmarks/cluster_results.json.

Run: HF_HUB_OFFLINE=1 PYTHONPATH=. python -m benchmarks.cluster   (needs pip install -e ".[cluster]")
For each replica count: `python -m studio serve --replicas N --threads 1` on a local Ray cluster,
one warm-up request per replica, then JOBS concurrent txt2img requests (64x64, STEPS steps, the
default model) through the studio's HTTP API; images per second = JOBS / wall time. Each replica
runs one torch thread, so on a machine with fewer free cores than replicas the gain shrinks
(the load average is recorded with the result).
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_cluster import ClusterServer  # noqa: E402  (the test's server: own process group, clean stop)

HERE = Path(__file__).resolve().parent
JOBS, STEPS = 24, 20


def throughput(replicas: int) -> dict[str, float]:
    with TemporaryDirectory() as tmp:
        server = ClusterServer(Path(tmp), replicas=replicas)
        try:
            server.wait_ready()
            body = {"prompt": "a red circle on a blue background", "steps": STEPS, "width": 64, "height": 64}

            def one(seed: int) -> None:
                response = httpx.post(server.url + "sdapi/v1/txt2img", json={**body, "seed": seed}, timeout=1200)
                response.raise_for_status()

            with ThreadPoolExecutor(replicas) as pool:  # warm-up: every replica builds its pipeline once
                list(pool.map(one, range(replicas)))
            start = time.perf_counter()
            with ThreadPoolExecutor(JOBS) as pool:
                list(pool.map(one, range(1000, 1000 + JOBS)))
            wall = time.perf_counter() - start
            return {"wall_s": round(wall, 2), "images_per_s": round(JOBS / wall, 3),
                    "load_average_1m": round(os.getloadavg()[0], 1)}
        finally:
            server.stop()


def main() -> None:
    results = {"machine": {"cpus": os.cpu_count()}, "jobs": JOBS, "steps": STEPS, "size": 64,
               "replicas": {str(count): throughput(count) for count in (1, 2)}}
    one, two = (results["replicas"][key]["images_per_s"] for key in ("1", "2"))
    results["speedup_2_vs_1"] = round(two / one, 2)
    path = HERE / "cluster_results.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
