"""Load figures as tests: concurrent identical requests, interrupt latency, memory over many jobs."""
from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.adversarial.conftest import Tally

API = "/sdapi/v1"
SMALL = {"prompt": "a green triangle on a red background", "steps": 3, "width": 64, "height": 64, "seed": 77,
         "sampler_name": "Euler a"}


def test_sixteen_concurrent_identical_requests_give_identical_bytes(api, adversary_studio, monkeypatch):
    # The in-process client is one caller here; it plays sixteen, so its share is the whole queue.
    monkeypatch.setattr(adversary_studio.generation.queue, "per_user", 16)
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda _: api.post(f"{API}/txt2img", json=SMALL), range(16)))
    tally = Tally("load")
    for response in responses:
        tally.tried(response.status_code == 200)
    assert all(response.status_code == 200 for response in responses)
    images = {response.json()["images"][0] for response in responses}
    assert len(images) == 1  # pixels and metadata, byte for byte


def test_interrupt_stops_within_one_step(api, adversary_studio):
    finished: dict = {}

    def run() -> None:
        finished["response"] = api.post(f"{API}/txt2img", json={**SMALL, "steps": 150, "seed": 5})

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 600
    while not (adversary_studio.generation.progress().steps == 150 and adversary_studio.generation.progress().step >= 3):
        assert time.monotonic() < deadline and worker.is_alive(), "the job never reached step 3"
        time.sleep(0.01)
    at_interrupt = adversary_studio.generation.progress().step
    assert api.post(f"{API}/interrupt").status_code == 200
    worker.join(timeout=600)
    response = finished["response"]
    last_step = adversary_studio.generation.progress().step
    Tally("load").tried(response.status_code == 200)
    assert response.status_code == 200
    assert last_step <= at_interrupt + 1, f"interrupted at step {at_interrupt}, stopped at {last_step}"


@pytest.mark.slow
def test_three_hundred_jobs_keep_memory_flat(api):
    process = psutil.Process()
    body = {**SMALL, "steps": 1}

    def jobs(count: int) -> None:
        for index in range(count):
            response = api.post(f"{API}/txt2img", json={**body, "seed": index})
            assert response.status_code == 200
            base64.b64decode(response.json()["images"][0])

    jobs(50)  # warm: caches, allocator pools
    warm = process.memory_info().rss
    jobs(250)
    after = process.memory_info().rss
    growth = (after - warm) / warm
    Tally("load").tried(growth < 0.05)
    assert growth < 0.05, f"RSS grew {growth:.1%} over 250 jobs ({warm >> 20} -> {after >> 20} MB)"
