"""Issue 22 §7 / "figures to keep": /progress answers when heavy routes hold every thread of AnyIO's
pool (it is an async route reading in-memory state; previews are made on its own thread)."""
from __future__ import annotations

import base64
import io
import threading
import time
from typing import Any

import anyio.to_thread
from PIL import Image

API = "/sdapi/v1"
LONG = {"prompt": "a blue square", "steps": 150, "width": 64, "height": 64, "seed": 9, "sampler_name": "Euler"}
KEYS = {"progress", "eta_relative", "state", "current_image", "textinfo"}


class Holder:
    """Borrows the last free thread of AnyIO's pool, as a slow sync route would."""


def fill_pool(holder: Holder) -> int:
    async def fill() -> int:
        limiter = anyio.to_thread.current_default_thread_limiter()
        was = int(limiter.total_tokens)
        limiter.total_tokens = limiter.borrowed_tokens + 1
        await limiter.acquire_on_behalf_of(holder)
        assert limiter.available_tokens == 0
        return was
    return fill


def free_pool(holder: Holder, was: int) -> Any:
    async def free() -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.release_on_behalf_of(holder)
        limiter.total_tokens = was
    return free


def get_in_thread(api: Any, path: str) -> Any:
    """The response, or None if the route did not answer (it waited for a thread that never came)."""
    found: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: found.update(response=api.get(path)), daemon=True)
    worker.start()
    worker.join(timeout=120)  # a hang detector, not a speed check
    return found.get("response")


def test_progress_answers_with_its_preview_while_the_thread_pool_is_full(api, adversary_studio):
    done: dict[str, Any] = {}
    job = threading.Thread(target=lambda: done.update(response=api.post(f"{API}/txt2img", json=LONG)))
    job.start()
    deadline = time.monotonic() + 600
    while not (adversary_studio.generation.progress().steps == 150 and adversary_studio.generation.progress().step >= 2):
        assert time.monotonic() < deadline and job.is_alive(), "the job never reached step 2"
        time.sleep(0.02)
    holder = Holder()
    was = api.portal.call(fill_pool(holder))
    try:
        response = get_in_thread(api, f"{API}/progress")
        idle_preview = get_in_thread(api, f"{API}/progress?skip_current_image=true")
    finally:
        api.portal.call(free_pool(holder, was))
        api.post(f"{API}/interrupt")
        job.join(timeout=600)
    assert response is not None, "/progress waited for a thread of the full pool"
    assert response.status_code == 200, response.text
    report = response.json()
    assert KEYS <= set(report)
    assert report["state"]["sampling_steps"] == 150, "/progress answered only once the job had ended and freed its thread"
    assert 0 < report["progress"] <= 1 and report["state"]["sampling_step"] >= 2
    if report["current_image"] is not None:  # None only if the job just ended
        assert Image.open(io.BytesIO(base64.b64decode(report["current_image"]))).size == (64, 64)
    assert idle_preview is not None and idle_preview.status_code == 200
    assert idle_preview.json()["current_image"] is None
    assert done["response"].status_code == 200
