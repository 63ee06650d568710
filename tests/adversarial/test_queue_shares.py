"""Issue 22 items 7 and 11 over HTTP on a --listen --auth server: heavy routes (Extras, model switches,
Reproduce) take a place in the same fair queue as generation, so they are refused at once beyond its
size or the caller's share instead of piling threads; cheap routes stay answerable; one user's share
(--queue-per-user) never locks another out."""
from __future__ import annotations

import base64
import io
from typing import Any, Callable, Iterator

import httpx
import pytest
from PIL import Image

from studio.cli.serve import serve
from studio.settings import Settings
from tests.browser.conftest import free_port
from tests.support.waiting import in_background
from tests.support.waiting import wait_until as wait_for

API = "/sdapi/v1"
USERS = (("alice", "alice-pass-1"), ("bob", "bob-pass-22"), ("carol", "carol-pass-333"))
PASSWORDS = dict(USERS)
LONG = {"prompt": "a red circle", "sampler_name": "Euler", "steps": 150, "seed": 3, "width": 64, "height": 64}
TIMEOUT = 180


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    root = tmp_path_factory.mktemp("shares")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", styles_file=root / "styles.csv", port=free_port(),
                        host="0.0.0.0", open_browser=False, auth=USERS, api_auth=USERS, queue_size=3,
                        queue_per_user=2)
    studio, demo, _ = serve(settings, block=False)
    try:
        yield studio, f"http://127.0.0.1:{settings.port}"
    finally:
        demo.close()


def client(url: str, user: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=(user, PASSWORDS[user]), timeout=TIMEOUT)


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    return wait_for(condition, what, timeout=TIMEOUT)


def png_b64(size: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def running(alice: httpx.Client) -> dict[str, Any]:
    return wait_until(lambda: (lambda r: r if r["state"]["sampling_step"] > 0 else None)(
        alice.get(f"{API}/progress").json()), "alice's job to run")


def test_heavy_routes_wait_in_the_queue_and_are_refused_beyond_it_while_cheap_routes_answer(served):
    studio, url = served
    queue = studio.generation.queue
    extras = {"image": png_b64(8), "upscaling_resize": 2, "upscaler_1": "Nearest"}
    with client(url, "alice") as alice, client(url, "bob") as bob, client(url, "carol") as carol:
        long_job, long_done = in_background(lambda: alice.post(f"{API}/txt2img", json=LONG))
        running(alice)
        # A heavy job runs: the cheap routes answer.
        assert bob.get(f"{API}/progress").status_code == 200
        assert bob.get(f"{API}/no-such-route").status_code == 404
        # Twelve concurrent Extras from bob and carol: the queue (3 places, 2 per user) takes two,
        # the others are refused at once with the limit named (no thread waits for them).
        calls = [in_background(lambda who=who: who.post(f"{API}/extra-single-image", json=extras))
                 for who in (bob, carol) * 6]
        refused = wait_until(lambda: [d["response"] for _, d in calls if "response" in d] if sum(
            "response" in d for _, d in calls) >= 10 else None, "ten refusals")
        assert len(queue.jobs()) == 3  # alice's job and two Extras: nothing beyond the queue's size
        for response in refused:
            assert response.status_code in (429, 503), response.text
            detail = response.json()["detail"]
            assert "--queue-per-user" in detail or "queue is full (3 jobs)" in detail
        assert any(r.status_code == 503 for r in refused)  # the queue's size
        # A model switch is heavy too: it takes a place, so it is refused while the queue is full.
        switch = alice.post(f"{API}/options", json={"sd_model_checkpoint": studio.models.current_title()})
        assert switch.status_code == 503 and "queue is full" in switch.json()["detail"]
        assert bob.get(f"{API}/progress").status_code == 200
        assert alice.post(f"{API}/interrupt").status_code == 200
        long_job.join(TIMEOUT)
        for thread, _ in calls:
            thread.join(TIMEOUT)
        answered = [d["response"] for _, d in calls if d["response"].status_code == 200]
        assert len(answered) == 2  # the two admitted ones ran after alice's job
        image = Image.open(io.BytesIO(base64.b64decode(answered[0].json()["image"])))
        assert image.size == (16, 16)
    assert queue.jobs() == []


def test_one_users_share_never_locks_another_out(served):
    studio, url = served
    with client(url, "alice") as alice, client(url, "bob") as bob:
        first, first_done = in_background(lambda: alice.post(f"{API}/txt2img", json=LONG))
        running(alice)
        second, second_done = in_background(lambda: alice.post(f"{API}/txt2img", json={**LONG, "steps": 1}))
        wait_until(lambda: len(studio.generation.queue.jobs()) == 2, "alice's second job to be queued")
        over = alice.post(f"{API}/txt2img", json={**LONG, "steps": 1})  # a third: beyond her share of 2
        assert over.status_code == 429
        assert "--queue-per-user 2" in over.json()["detail"] and over.headers.get("retry-after")
        # bob is admitted although alice asks for more: the queue holds fewer than 3 jobs of others.
        bobs, bob_done = in_background(lambda: bob.post(f"{API}/txt2img", json={**LONG, "steps": 1, "seed": 9}))
        wait_until(lambda: len(studio.generation.queue.jobs()) == 3, "bob's job to be queued")
        assert alice.post(f"{API}/interrupt").status_code == 200  # stops her running job, cancels her queued one
        for thread in (first, second, bobs):
            thread.join(TIMEOUT)
        assert bob_done["response"].status_code == 200
        assert len(bob_done["response"].json()["images"]) == 1  # bob's image was made
    assert studio.generation.queue.jobs() == []
