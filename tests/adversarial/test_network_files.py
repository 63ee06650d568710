"""Network files under attack (issue 22 §10, §15): many LoRA tags against LoRAs with large metadata,
and malformed files (embeddings, LoRAs, links out of the folder). A bad file is skipped with a
warning in its listing; a request that names it gets a 422; start-up and other prompts go on."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator

import httpx
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
from tests.support.served import served_studio

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


# -- malformed files (§15): a real server starts with them, lists them with a warning, refuses them by name --

def write_malformed(models: Path, pipe) -> None:
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    emb = models / "embeddings"
    emb.mkdir(parents=True)
    save_file({"emb_params": torch.tensor(1.0)}, str(emb / "scalar.safetensors"))  # stopped start-up
    save_file({"emb_params": torch.randn(2, 3, width)}, str(emb / "cube.safetensors"))
    save_file({"emb_params": torch.zeros(0, width)}, str(emb / "empty.safetensors"))
    nf.embedding(pipe, emb / "a.safetensors", vectors=1)  # a good embedding named like the commonest word
    loras = models / "Lora"
    loras.mkdir(parents=True)
    nf.kohya_lora(pipe, loras / "good.safetensors", scale=0.05)
    (loras / "huge.safetensors").write_bytes((2**63 - 1).to_bytes(8, "little") + b"{}")
    (loras / "passwd.safetensors").symlink_to("/etc/passwd")
    from tests.support.esrgan import rrdbnet_state_dict

    state = rrdbnet_state_dict()
    state["conv_first.weight"] = torch.randn(8, 5, 3, 3) * 0.05  # a 5-channel first conv
    (models / "ESRGAN").mkdir()
    save_file(state, str(models / "ESRGAN" / "five-channel.safetensors"))


@pytest.fixture(scope="module")
def malformed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from studio.checkpoints.manager import ModelManager
    from tests.browser.conftest import free_port

    root = tmp_path_factory.mktemp("malformed")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache", host="127.0.0.1", port=free_port(), open_browser=False)
    write_malformed(settings.models_dir, ModelManager(settings).current().pipe)
    with served_studio(settings) as (_, client):  # start-up reads every embedding for its listing
        yield client


def test_malformed_embeddings_are_listed_as_skipped_with_a_warning(malformed_server):
    listed = malformed_server.get(f"{API}/embeddings").json()
    tally = Tally("network files")
    for name in ("scalar", "cube", "empty"):
        warned = name in listed["skipped"] and "shape" in listed["skipped"][name]["warning"]
        tally.tried(warned)
        assert warned, listed["skipped"].get(name)
    assert "a" in listed["loaded"]


def test_malformed_embeddings_never_break_a_prompt(malformed_server):
    tally = Tally("network files")
    for prompt in ("scalar cube empty, a red circle", "(cube:1.3) [empty:a:0.5] circle"):
        response = malformed_server.post(f"{API}/txt2img", json={**FAST, "prompt": prompt})
        assert_handled(response, tally)
        assert response.status_code == 200, response.text
        infotext = json.loads(response.json()["info"])["infotexts"][0]
        hashes = infotext.split("TI hashes: ")[1].split('"')[1] if "TI hashes: " in infotext else ""
        assert not any(name in hashes for name in ("cube", "scalar", "empty")), hashes  # skipped: plain text


def test_an_embedding_is_matched_by_whole_tokens_as_a1111(malformed_server):
    """An embedding named `a`: the word "a" (any case) uses it; "cat" and "circle" are untouched."""
    def infotext(prompt: str) -> str:
        response = malformed_server.post(f"{API}/txt2img", json={**FAST, "prompt": prompt})
        assert response.status_code == 200, response.text
        return json.loads(response.json()["info"])["infotexts"][0]

    assert 'TI hashes: "a: ' in infotext("a cat on a mat") and 'TI hashes: "a: ' in infotext("A cat")
    assert "TI hashes" not in infotext("cat, circle, banana")


def test_bad_lora_files_are_listed_with_a_warning_and_refused_by_name(malformed_server):
    tally = Tally("network files")
    listed = {item["name"]: item for item in malformed_server.get(f"{API}/loras").json()}
    assert "warning" not in listed["good"]
    assert "outside" in listed["passwd"]["warning"] and "header" in listed["huge"]["warning"]
    assert "root:" not in json.dumps(listed)
    for name in ("huge", "passwd"):
        response = malformed_server.post(f"{API}/txt2img", json={**FAST, "prompt": f"a red circle <lora:{name}:1>"})
        assert_handled(response, tally)
        assert response.status_code == 422 and f"{name}.safetensors is skipped" in response.json()["detail"]
        assert "root:" not in response.text
    good = malformed_server.post(f"{API}/txt2img", json={**FAST, "prompt": "a red circle <lora:good:1>"})
    assert good.status_code == 200, good.text


def test_an_esrgan_with_a_five_channel_first_conv_is_a_422_in_extras_and_hires(malformed_server):
    import base64
    import io

    from PIL import Image

    tally = Tally("network files")
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    extras = malformed_server.post(f"{API}/extra-single-image", json={
        "image": image, "upscaler_1": "five-channel", "upscaling_resize": 2})
    hires = malformed_server.post(f"{API}/txt2img", json={**FAST, "enable_hr": True, "hr_scale": 2,
                                                         "hr_upscaler": "five-channel"})
    for response in (extras, hires):
        assert_handled(response, tally)
        assert response.status_code == 422 and "5 and gives 3 channels" in response.json()["detail"], response.text
