"""The engine on Ray Serve replicas, driven as a client drives it: `python -m studio serve
--replicas 2` on a local Ray cluster on this CPU, HTTP through the studio's own server.

One cluster for the module (starting Ray and two replicas is the slow part): 16 concurrent API
requests, all answered, spread over both replicas, each image bit-identical to a single-process
run at the same seed; a replica killed mid-job, its job retried on the other with nothing lost or
duplicated in outputs/; requests for two checkpoints routed to the replica holding each; the
`backend` option set over HTTP followed by the replicas from the next job (refusals as 422).
"""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from studio.checkpoints.catalog import DEFAULT_MODEL_TITLE
from studio.request import GenerationRequest
from studio.service.container import Services, build_services
from studio.settings import Settings
from studio.web.convert import to_request
from studio.web.schemas import Txt2ImgBody
from tests.browser.conftest import free_port, screenshot, studio_page
from tests.support.tiny_models import write_tiny_sd15_folder

pytest.importorskip("ray.serve", reason='Ray Serve is the optional extra: pip install -e ".[cluster]"')
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

STEPS, SIZE = 4, 64
OTHER_MODEL = "tiny-other"


class ClusterServer:
    """`python -m studio serve --replicas 2 --threads 1` in its own process group (Ray's processes with it)."""

    def __init__(self, root: Path, replicas: int = 2) -> None:
        self.root, self.outputs = root, root / "outputs"
        self.url = f"http://127.0.0.1:{free_port()}/"
        args = [sys.executable, "-m", "studio", "serve", "--replicas", str(replicas), "--threads", "1", "--no-browser",
                "--port", self.url.rsplit(":", 1)[1].strip("/"), "--outputs-dir", str(self.outputs),
                "--models-dir", str(root / "models"), "--styles-file", str(root / "styles.csv")]
        self.log = (root / "server.log").open("w")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "RAY_DEDUP_LOGS": "0"})

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.tail()
            try:
                urllib.request.urlopen(self.url, timeout=5)
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"the cluster did not start: {self.tail()}")

    def tail(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-4000:]

    def status(self) -> dict[str, Any]:
        return httpx.get(self.url + "studio/v1/cluster", timeout=60).json()

    def stop(self) -> None:
        """SIGTERM (the studio removes its replicas and stops Ray), then whatever is left of the group."""
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServer]:
    root = tmp_path_factory.mktemp("cluster")
    write_tiny_sd15_folder(root / "models" / "Stable-diffusion" / OTHER_MODEL)
    server = ClusterServer(root)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def single_process(cluster: ClusterServer) -> Iterator[Services]:
    """The same models in this process with one torch thread, as each replica runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = cluster.root
    yield build_services(Settings(models_dir=root / "models", outputs_dir=root / "local-outputs",
                                 extensions_dir=root / "extensions", cache_dir=root / "local-cache",
                                 styles_file=root / "styles.csv"))
    torch.set_num_threads(threads)


def body_for(seed: int, model: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"prompt": "a red square", "steps": STEPS, "width": SIZE, "height": SIZE, "seed": seed,
            "save_images": True, **fields}
    if model:
        body["override_settings"] = {**body.get("override_settings", {}), "sd_model_checkpoint": model}
    return body


def reference(studio: Services, seed: int, model: str | None = None, **fields: Any) -> list[np.ndarray]:
    """The same API body run in this process (converted as the API converts it). A body that names no
    model runs on the cluster's start-up model, whatever this process ran last."""
    request = to_request(Txt2ImgBody(**body_for(seed, model or DEFAULT_MODEL_TITLE, **fields)), studio)
    return [np.asarray(saved.image) for saved in studio.generation.submit(request, save=False).images]


def txt2img(cluster: ClusterServer, seed: int, model: str | None = None, **fields: Any) -> dict[str, Any]:
    response = httpx.post(cluster.url + "sdapi/v1/txt2img", json=body_for(seed, model, **fields), timeout=600)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def decoded(answer: dict[str, Any]) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(item))) for item in answer["images"]]


def saved_with_seed(cluster: ClusterServer, seed: int) -> list[Path]:
    return sorted(cluster.outputs.rglob(f"*-{seed}.png"))


def test_16_concurrent_requests_are_all_answered_over_both_replicas_with_single_process_pixels(cluster, single_process):
    seeds = list(range(100, 116))
    with ThreadPoolExecutor(len(seeds)) as pool:
        answers = list(pool.map(lambda seed: txt2img(cluster, seed), seeds))

    for seed, answer in zip(seeds, answers):
        (image,) = decoded(answer)
        assert np.array_equal(np.asarray(image.convert("RGB")), reference(single_process, seed)[0]), seed
        recipe = json.loads(image.info["studio"])
        assert recipe["torch_threads"] == 1 and recipe["dtype"] == "float32" and recipe["device"] == "cpu"
        assert len(saved_with_seed(cluster, seed)) == 1  # saved once, by the ingress

    served = cluster.status()["served"]
    assert len(served) == 2 and sum(item["jobs"] for item in served.values()) == len(seeds), served
    assert all(item["jobs"] >= 1 for item in served.values()), served


def test_reproduce_extras_and_a_bad_request_go_through_the_replicas_as_on_one_machine(cluster):
    (saved,) = saved_with_seed(cluster, 100)  # made by the first test
    source = base64.b64encode(saved.read_bytes()).decode()
    again = httpx.post(cluster.url + "studio/v1/reproduce", json={"image": source}, timeout=600)
    assert again.status_code == 200, again.text[:500]
    (image,) = decoded(again.json())
    with Image.open(saved) as original:
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(original.convert("RGB")))

    bigger = httpx.post(cluster.url + "sdapi/v1/extra-single-image", timeout=600,
                        json={"image": source, "upscaler_1": "Lanczos", "upscaling_resize": 2})
    assert bigger.status_code == 200, bigger.text[:500]
    assert Image.open(io.BytesIO(base64.b64decode(bigger.json()["image"]))).size == (2 * SIZE, 2 * SIZE)

    # An error the replica raises reaches the client as on one machine: a short 4xx naming the field.
    refused = httpx.post(cluster.url + "sdapi/v1/extra-single-image", timeout=600,
                         json={"image": source, "upscaler_1": "nope"})
    assert refused.status_code == 422 and "unknown upscaler_1 'nope'" in refused.text
    assert "Traceback" not in refused.text and "RayTaskError" not in refused.text


def test_requests_for_two_checkpoints_go_to_the_replica_that_holds_each(cluster, single_process):
    models = [DEFAULT_MODEL_TITLE, OTHER_MODEL] * 4
    for index, model in enumerate(models):  # one after another: each replica is free when its model comes
        (image,) = decoded(txt2img(cluster, 300 + index, model=model))
        assert np.array_equal(np.asarray(image.convert("RGB")), reference(single_process, 300 + index, model)[0])
    holders = {}
    for answer in cluster.status()["recent"][-6:]:  # after the first of each: no replica switches model
        holders.setdefault(answer["model"], set()).add(answer["replica"])
    assert set(holders) == set(models[:2]) and all(len(replicas) == 1 for replicas in holders.values()), holders
    assert holders[DEFAULT_MODEL_TITLE] != holders[OTHER_MODEL]


@pytest.fixture
def backend_option(cluster: ClusterServer) -> Iterator[Callable[[str], None]]:
    """Sets the ingress's `backend` option over HTTP (as Settings does); the value before comes back after."""
    url = cluster.url + "sdapi/v1/options"
    before = httpx.get(url, timeout=60).json()["backend"]

    def choose(backend: str) -> None:
        answer = httpx.post(url, json={"backend": backend}, timeout=60)
        assert answer.status_code == 200 and httpx.get(url, timeout=60).json()["backend"] == backend, answer.text

    yield choose
    choose(before)


def test_the_backend_option_reaches_the_replicas_and_their_refusals_reach_the_caller(cluster, single_process,
                                                                                   backend_option):
    merging = {"override_settings": {"token_merging_ratio": 0.3}}  # a feature openvino refuses, eager runs
    backend_option("openvino")
    with ThreadPoolExecutor(4) as pool:  # side by side: whichever replicas take them
        refused = list(pool.map(lambda seed: httpx.post(cluster.url + "sdapi/v1/txt2img", timeout=600,
                                                        json=body_for(seed, **merging)), range(1100, 1104)))
    for answer in refused:  # the replica's RequestError, as a single server answers it
        assert answer.status_code == 422, answer.text[:500]
        assert "openvino backend does not run token merging" in answer.json()["detail"]
        assert "Traceback" not in answer.text and "RayTaskError" not in answer.text

    backend_option("eager")
    (merged,) = decoded(txt2img(cluster, 1100, **merging))
    expected = reference(single_process, 1100, **merging)[0]
    assert np.array_equal(np.asarray(merged.convert("RGB")), expected)


def test_a_replica_makes_an_openvino_image_once_the_option_says_so(cluster, single_process, backend_option):
    pytest.importorskip("openvino")
    eager = reference(single_process, 1200)[0]
    backend_option("openvino")
    (image,) = decoded(txt2img(cluster, 1200))
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    difference = np.abs(pixels - eager).mean()
    assert 0 < difference < 8  # of 255: the same picture, from OpenVINO's UNet (bf16 or f32) rather than torch's
    backend_option("eager")
    (image,) = decoded(txt2img(cluster, 1200))
    assert np.array_equal(np.asarray(image.convert("RGB")), eager)


@pytest.mark.browser
def test_the_ui_runs_its_job_on_a_replica_and_saves_it_at_the_ingress(cluster, single_process, browser):
    jobs_before = sum(item["jobs"] for item in cluster.status()["served"].values())
    with studio_page(browser, cluster.url) as page:
        page.fill("#txt2img_prompt textarea", "a red square")
        for name, value in (("steps", str(STEPS)), ("cfg_scale", "7")):
            field = page.locator(f"#txt2img_{name} input[type=number]").first
            field.fill(value)
            field.press("Tab")
        page.fill("#txt2img_seed input", "4343")
        page.click("#txt2img_generate")
        page.wait_for_function("document.querySelector('#txt2img_infotext textarea')?.value.includes('Seed: 4343')",
                               timeout=120_000)
        page.wait_for_selector("#txt2img_gallery img", timeout=60_000)
        screenshot(page, "cluster-txt2img")
    (saved,) = saved_with_seed(cluster, 4343)
    with Image.open(saved) as image:
        recipe = json.loads(image.info["studio"])
        pixels = np.asarray(image.convert("RGB"))
    request = GenerationRequest.from_dict(recipe["request"])
    assert request.model == DEFAULT_MODEL_TITLE and request.steps == STEPS
    expected = single_process.generation.submit(request, save=False).images[0].image
    assert np.array_equal(pixels, np.asarray(expected))  # the UI's request, the same pixels in one process
    assert sum(item["jobs"] for item in cluster.status()["served"].values()) == jobs_before + 1


def test_progress_and_interrupt_reach_the_replica_running_the_job(cluster):
    answer: dict[str, Any] = {}
    job = threading.Thread(target=lambda: answer.update(txt2img(cluster, 700, steps=150, n_iter=4)))
    job.start()
    deadline = time.monotonic() + 300
    while True:
        assert time.monotonic() < deadline and job.is_alive(), "the job never ran"
        progress = httpx.get(cluster.url + "sdapi/v1/progress", timeout=60).json()
        if progress["state"]["sampling_step"] >= 2:
            break
        time.sleep(0.05)
    state = progress["state"]
    assert (state["job"], state["sampling_steps"], state["job_count"]) == ("generate", 150, 4)
    assert 0 < progress["progress"] < 1
    assert httpx.post(cluster.url + "sdapi/v1/interrupt", timeout=60).status_code == 200
    job.join(timeout=300)
    info = json.loads(answer["info"])
    assert info["interrupted"] is True and len(answer["images"]) == 1  # the image in progress is kept (A1111)
    assert "Interrupted: at step" in info["infotexts"][0]
    assert len(saved_with_seed(cluster, 700)) == 1


def test_a_replica_killed_mid_job_its_job_is_retried_on_the_other_and_saved_once(cluster, single_process):
    retries_before = cluster.status()["retries"]
    answer: dict[str, Any] = {}
    job = threading.Thread(target=lambda: answer.update(txt2img(cluster, 900, steps=30, n_iter=2)))
    job.start()
    deadline = time.monotonic() + 300
    while True:  # wait until a replica is sampling the job, then kill that replica's process
        assert time.monotonic() < deadline and job.is_alive(), "the job never ran"
        running = [item for item in cluster.status()["running"] if item["progress"] and item["progress"]["step"] >= 2]
        if running:
            break
        time.sleep(0.05)
    victim = running[0]["replica"]
    os.kill(victim["pid"], signal.SIGKILL)
    job.join(timeout=600)

    images = decoded(answer)
    expected = reference(single_process, 900, steps=30, n_iter=2)
    same = [np.array_equal(np.asarray(image.convert("RGB")), pixels) for image, pixels in zip(images, expected)]
    assert same == [True, True]
    assert [len(saved_with_seed(cluster, seed)) for seed in (900, 901)] == [1, 1]  # nothing lost, nothing twice
    assert not list(cluster.outputs.rglob(".saving-*"))
    status = cluster.status()
    assert status["retries"] == retries_before + 1
    assert status["recent"][-1]["replica"] != victim["id"]
