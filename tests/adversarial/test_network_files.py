"""Network files under attack (issue 22 §10, §15): many LoRA tags against LoRAs with large metadata,
and malformed files (embeddings, LoRAs, links out of the folder). A bad file is skipped with a
warning in its listing; a request that names it gets a 422; start-up and other prompts go on."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from studio.networks import discovery
from studio.service.container import Services, build_services
from studio.settings import Settings
from studio.web.auth import AccessPolicy
from studio.web.mount import build_api
from tests.adversarial.conftest import Tally, assert_handled
from tests.support import network_files as nf

API = "/sdapi/v1"
FAST = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 7, "save_images": False}
LORAS = 30
METADATA_BYTES = 300_000


@pytest.fixture(scope="module")
def studio_and_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, TestClient]]:
    root = tmp_path_factory.mktemp("netfiles")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache")
    services = build_services(settings)
    pipe = services.models.current().pipe
    lora_dir = settings.models_dir / "Lora"
    lora_dir.mkdir(parents=True)
    for n in range(LORAS):  # kohya LoRAs whose training metadata is large, as real ones can be
        nf.kohya_lora(pipe, lora_dir / f"file_{n:02}.safetensors", seed=n, scale=0.05,
                      metadata={"ss_output_name": f"STYLE_{n:02}", "ss_tag_frequency": "x" * METADATA_BYTES})
    app = FastAPI()
    app.include_router(build_api(services, AccessPolicy()))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield services, client


def test_many_lora_tags_read_each_files_metadata_once(studio_and_api, monkeypatch):
    _, api = studio_and_api
    reads: Counter = Counter()
    real_open = discovery.safe_open

    def counting_open(path, *args, **kwargs):
        reads[Path(path).name] += 1
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(discovery, "safe_open", counting_open)
    # 31 tags by alias (weight 0: looked up and hashed, not applied) and one by the file name in
    # another case (A1111 finds it), applied
    tags = " ".join(f"<lora:STYLE_{n % LORAS:02}:0>" for n in range(31)) + " <lora:FILE_03:0.5>"
    for _ in range(2):
        response = api.post(f"{API}/txt2img", json={**FAST, "prompt": "a red circle " + tags})
        assert response.status_code == 200, response.text
    assert reads and max(reads.values()) == 1, f"metadata read per tag: {reads.most_common(3)}"
    info = json.loads(response.json()["info"])
    assert "STYLE_29" in info["infotexts"][0] and "FILE_03" in info["infotexts"][0]  # Lora hashes


def test_more_network_tags_than_the_cap_are_refused_at_admission(studio_and_api):
    _, api = studio_and_api
    tally = Tally("network files")
    for count in (33, 850):
        prompt = "a red circle " + " ".join(f"<lora:STYLE_{n % LORAS:02}:0.001>" for n in range(count))
        for field in ("prompt", "negative_prompt"):
            response = api.post(f"{API}/txt2img", json={**FAST, field: prompt})
            assert_handled(response, tally)
            assert response.status_code == 422 and "at most 32 network tags" in response.json()["detail"]
