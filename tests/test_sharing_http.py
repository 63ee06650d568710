"""Many people on one server, over HTTP (issue 17): each API caller's /progress, /interrupt and /skip are
about its own job; the queue is bounded (503 beyond it); with several users each one's outputs go to
outputs/<user>/ and Gradio's file routes serve them to that user only. A real server (serve())."""
from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
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
USERS = (("alice", "alice-pass-1"), ("bob", "bob-pass-22"))
PASSWORDS = dict(USERS)
BASE = {"prompt": "a red circle on a blue background", "sampler_name": "Euler", "steps": 2, "cfg_scale": 6,
        "seed": 11, "width": 64, "height": 64}
TIMEOUT = 120


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, Path]]:
    root = tmp_path_factory.mktemp("sharing")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs",
                        extensions_dir=Path(__file__).resolve().parents[1] / "extensions",  # X/Y/Z, Prompt matrix
                        cache_dir=root / "cache", styles_file=root / "styles.csv", port=free_port(),
                        open_browser=False, auth=USERS, api_auth=USERS, queue_size=2)
    studio, demo, _ = serve(settings, block=False)
    try:
        yield studio, f"http://127.0.0.1:{settings.port}", root / "outputs"
    finally:
        demo.close()


def api(url: str, user: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=(user, PASSWORDS[user]), timeout=TIMEOUT)


def logged_in(url: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=TIMEOUT)
    response = client.post("/login", data={"username": user, "password": PASSWORDS[user]})
    assert response.status_code in (200, 302, 303), response.text
    return client


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    return wait_for(condition, what, timeout=TIMEOUT)


def test_each_user_saves_to_their_own_folder_and_gets_only_their_own_files(served):
    studio, url, outputs = served
    with api(url, "alice") as alice, api(url, "bob") as bob:
        assert alice.post(f"{API}/txt2img", json={**BASE, "save_images": True}).status_code == 200
        assert bob.post(f"{API}/txt2img", json={**BASE, "seed": 12, "save_images": True}).status_code == 200
    alice_files = list((outputs / "alice").rglob("*-11.png"))
    bob_files = list((outputs / "bob").rglob("*-12.png"))
    assert len(alice_files) == 1 and len(bob_files) == 1
    assert not list((outputs / "bob").rglob("*-11.png")) and not list(outputs.glob("*-images"))
    # History (what the UI's History tab lists) holds only the caller's own outputs.
    assert [path for path, _ in studio.outputs.history("bob").files()] == bob_files
    with pytest.raises(ValueError):  # bob cannot delete alice's image through his history
        studio.outputs.history("bob").delete(alice_files[0])
    assert alice_files[0].is_file()
    # Gradio's file route: each logged-in user gets their own outputs, never the other's.
    with closing(logged_in(url, "bob")) as bob_ui, httpx.Client(base_url=url, timeout=TIMEOUT) as nobody:
        assert bob_ui.get(f"/gradio_api/file={bob_files[0]}").status_code == 200
        refused = bob_ui.get(f"/gradio_api/file={alice_files[0]}")
        assert refused.status_code == 403 and "another user" in refused.json()["detail"]
        sneaky = f"{outputs}/bob/../alice/{alice_files[0].relative_to(outputs / 'alice')}"
        assert bob_ui.get(f"/gradio_api/file={sneaky}").status_code == 403
        assert nobody.get(f"/gradio_api/file={bob_files[0]}").status_code in (401, 403)


def test_progress_interrupt_and_the_queue_are_each_callers_own(served):
    studio, url, _ = served
    with api(url, "alice") as alice, api(url, "bob") as bob:
        alice_job, alice_done = in_background(lambda: alice.post(f"{API}/txt2img", json={**BASE, "steps": 150}))
        running = wait_until(lambda: (lambda r: r if r["state"]["sampling_step"] > 0 else None)(
            alice.get(f"{API}/progress").json()), "alice's job to run")
        assert running["state"]["job"] == "generate" and running["queue"]["position"] == 1
        idle = bob.get(f"{API}/progress").json()  # bob has no job: he sees nothing of alice's
        assert idle["state"]["job"] == "" and idle["progress"] == 0 and idle["current_image"] is None
        assert bob.post(f"{API}/interrupt").status_code == 200 and bob.post(f"{API}/skip").status_code == 200
        step = running["state"]["sampling_step"]
        wait_until(lambda: alice.get(f"{API}/progress").json()["state"]["sampling_step"] > step + 2,
                   "alice's job to go on after bob's interrupt")
        assert alice_job.is_alive()

        bob_job, bob_done = in_background(lambda: bob.post(f"{API}/txt2img", json={**BASE, "seed": 13}))
        queued = wait_until(lambda: (lambda r: r if r["queue"] else None)(bob.get(f"{API}/progress").json()),
                            "bob's job to be queued")
        assert queued["queue"]["queued"] is True and (queued["queue"]["position"], queued["queue"]["ahead"]) == (2, 1)
        assert "position 2 (1 job(s) ahead)" in queued["textinfo"]
        full = alice.post(f"{API}/txt2img", json=BASE)  # --queue-size 2: a third job is refused at once
        assert full.status_code == 503 and "queue is full" in full.json()["detail"]

        assert bob.post(f"{API}/interrupt").status_code == 200  # cancels bob's queued job only
        bob_job.join(TIMEOUT)
        assert bob_done["response"].status_code == 200
        assert json.loads(bob_done["response"].json()["info"])["interrupted"] is True
        assert bob_done["response"].json()["images"] == []
        assert alice_job.is_alive() and alice.get(f"{API}/progress").json()["state"]["interrupted"] is False

        assert alice.post(f"{API}/interrupt").status_code == 200
        alice_job.join(TIMEOUT)
        assert json.loads(alice_done["response"].json()["info"])["interrupted"] is True
    assert studio.generation.queue.jobs() == []


def test_grids_go_to_their_owners_folder_and_only_the_owner_fetches_them(served):
    """Issue 22 item 14: an X/Y/Z grid and a Prompt matrix grid are saved under outputs/<user>/."""
    studio, url, outputs = served
    xyz = [1, "21, 22", [], 0, "", [], 0, "", [], True, False, False, False, False, False, False, 0, False]
    with api(url, "alice") as alice:
        made = alice.post(f"{API}/txt2img", json={**BASE, "save_images": True, "script_name": "x/y/z plot",
                                                  "script_args": xyz})
        assert made.status_code == 200, made.text
        matrix = alice.post(f"{API}/txt2img", json={**BASE, "seed": 23, "prompt": "a circle|red", "save_images": True,
                                                    "script_name": "Prompt matrix"})
        assert matrix.status_code == 200, matrix.text
    grids = sorted((outputs / "alice" / "txt2img-grids").rglob("*.png"))
    assert len(grids) == 2 and not (outputs / "txt2img-grids").exists()
    assert all(Image.open(grid).width > 64 for grid in grids)
    with closing(logged_in(url, "alice")) as alice_ui, closing(logged_in(url, "bob")) as bob_ui:
        for grid in grids:
            assert alice_ui.get(f"/gradio_api/file={grid}").status_code == 200
            refused = bob_ui.get(f"/gradio_api/file={grid}")
            assert refused.status_code == 403 and "another user" in refused.json()["detail"]
