import shutil

import numpy as np
import pytest

from studio.checkpoints.catalog import (
    DEFAULT_MODEL_DIR,
    DEFAULT_MODEL_TITLE,
    DISTILLED_MODEL_TITLE,
    discover_models,
    find_model,
)
from studio.checkpoints.manager import ModelManager
from studio.errors import ModelError
from studio.generation.engine import Engine
from studio.request import GenerationRequest


def test_default_model_is_always_offered_first(settings):
    entries = discover_models(settings)
    assert entries[0].title == DEFAULT_MODEL_TITLE and entries[0].kind == "default"


def test_diffusers_folder_in_models_tree_is_discovered_and_generates(settings):
    folder = settings.models_dir / "Stable-diffusion" / "my-diffusers-model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("controlnet-*"))
    (settings.models_dir / "Stable-diffusion" / "notes.txt").write_text("not a model")
    titles = [entry.title for entry in discover_models(settings)]
    assert titles == [DEFAULT_MODEL_TITLE, DISTILLED_MODEL_TITLE, "my-diffusers-model"]
    engine = Engine(ModelManager(settings))
    result = engine.run(GenerationRequest(prompt="a blue square", steps=3, seed=5, model="my-diffusers-model"))
    assert result.request.model == "my-diffusers-model"
    assert result.images[0].image.size == (64, 64)


def test_corrupt_model_gives_clear_error_and_previous_model_keeps_working(settings):
    root = settings.models_dir / "Stable-diffusion"
    root.mkdir(parents=True)
    (root / "broken.safetensors").write_bytes(b"\x00garbage" * 100)
    models = ModelManager(settings)
    engine = Engine(models)
    before = models.current()
    with pytest.raises(ModelError, match="broken.safetensors"):
        models.load("broken.safetensors")
    assert models.current() is before
    assert engine.run(GenerationRequest(prompt="a red circle", steps=2, seed=1)).images


def test_missing_model_names_what_is_available(settings):
    with pytest.raises(ModelError, match="not found.*available: studio-default-64px"):
        find_model("nothing-here", settings)


def test_switching_models_keeps_one_resident(settings):
    folder = settings.models_dir / "Stable-diffusion" / "copy"
    shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("controlnet-*"))
    models = ModelManager(settings)
    first = models.current()
    second = models.load("copy")
    assert models.loaded is second and second is not first
    assert first.mode_pipelines == {}  # released: the old model's pipelines are dropped
    weights_a = next(first.pipe.unet.parameters())
    weights_b = next(second.pipe.unet.parameters())
    assert weights_a.data_ptr() != weights_b.data_ptr()
    assert np.array_equal(weights_a.detach().numpy(), weights_b.detach().numpy())


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test (a refused title must never reach the Hub)."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_title_never_escapes_the_models_folder(settings, tmp_path, monkeypatch, no_network):
    outside = tmp_path / "outside_model"  # a valid diffusers folder beside models/, not in it
    shutil.copytree(DEFAULT_MODEL_DIR, outside, ignore=shutil.ignore_patterns("controlnet-*"))
    (settings.models_dir / "Stable-diffusion").mkdir(parents=True)
    monkeypatch.chdir(settings.models_dir / "Stable-diffusion")  # so "../outside_model" exists relatively
    hub = settings.replace(allow_hub=True)
    for title in ("../outside_model", str(outside), "..//outside_model", "./../outside_model"):
        for s in (settings, hub):
            with pytest.raises(ModelError):
                find_model(title, s, allow_hub=True)
    models = ModelManager(hub)
    with pytest.raises(ModelError):
        models.load("../outside_model", allow_hub=True)
    with pytest.raises(ModelError):
        Engine(models).run(GenerationRequest(prompt="x", steps=1, model="../outside_model"))
    assert models.loaded is None or models.loaded.entry.kind == "default"


def test_repo_ids_need_allow_hub_and_a_trusted_caller(settings, no_network):
    with pytest.raises(ModelError, match="--allow-hub"):
        find_model("evil-org/x", settings, allow_hub=True)
    hub = settings.replace(allow_hub=True)
    with pytest.raises(ModelError, match="not loaded from requests"):
        find_model("evil-org/x", hub)  # a request, recipe or PNG: never the Hub
    with pytest.raises(ModelError):
        ModelManager(hub).get("evil-org/x")
    entry = find_model("evil-org/x", hub, allow_hub=True)  # the user's own switch, Hub enabled
    assert entry.kind == "hub" and entry.location == "evil-org/x"
    for bad in ("evil-org/../x", "/abs/x", "org/x/y", ".hidden/x", "org/x.safetensors"):
        with pytest.raises(ModelError):
            find_model(bad, hub, allow_hub=True)


def test_allow_hub_flag_reaches_settings():
    from studio.cli.main import build_parser
    from studio.cli.settings_flags import settings_from_args

    args = build_parser().parse_args(["models", "--allow-hub"])
    assert settings_from_args(args).allow_hub is True
    assert settings_from_args(build_parser().parse_args(["models"])).allow_hub is False


def _copy_default(folder):
    shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("controlnet-*"))
    return folder


@pytest.mark.parametrize("class_name", [["evil_module", "EvilPipeline"], 5, "NoSuchPipeline", None, "AutoencoderKL"])
def test_diffusers_folder_with_a_bad_pipeline_class_is_a_clear_model_error(settings, class_name):
    import json

    folder = _copy_default(settings.models_dir / "Stable-diffusion" / "odd")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = class_name
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match=r"odd/model_index.json names pipeline class .* not a diffusers pipeline"):
        ModelManager(settings).load("odd")


def test_diffusers_folder_with_a_foreign_component_library_is_refused(settings):
    import json

    folder = _copy_default(settings.models_dir / "Stable-diffusion" / "odd")
    index = json.loads((folder / "model_index.json").read_text())
    index["unet"] = ["os", "system"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="component 'unet' comes from 'os'"):
        ModelManager(settings).load("odd")


def _unet_as_bin(folder, payload=None):
    """Replace the UNet's .safetensors by a torch pickle (.bin) holding the same weights."""
    import torch
    from safetensors.torch import load_file

    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = dict(load_file(weights))
    if payload is not None:
        state["payload"] = payload
    torch.save(state, folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()


class _WritesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.write_text, (self.marker, "unpickled"))


def test_pickle_weights_in_a_diffusers_folder_need_allow_pickle(settings):
    _unet_as_bin(_copy_default(settings.models_dir / "Stable-diffusion" / "pickled"))
    with pytest.raises(ModelError) as refused:
        ModelManager(settings).load("pickled")
    assert str(refused.value) == (
        "pickled stores unet/diffusion_pytorch_model.bin as pickle files, which can run code when loaded; "
        "convert them to .safetensors, or start with --allow-pickle to load them (weights only)")
    request = GenerationRequest(prompt="a red circle", steps=2, seed=3)
    allowed = Engine(ModelManager(settings.replace(allow_pickle=True)))
    pickled = allowed.run(request.replace(model="pickled")).images[0].image
    default = allowed.run(request.replace(model=DEFAULT_MODEL_TITLE)).images[0].image
    assert np.array_equal(np.asarray(pickled), np.asarray(default))  # same weights, same pixels


def test_code_carrying_pickle_in_a_diffusers_folder_never_runs(settings, tmp_path):
    marker = tmp_path / "pwned"
    _unet_as_bin(_copy_default(settings.models_dir / "Stable-diffusion" / "evil"), _WritesMarker(marker))
    with pytest.raises(ModelError) as refused:
        ModelManager(settings.replace(allow_pickle=True)).load("evil")
    assert not marker.exists()
    message = str(refused.value)
    assert message.startswith("could not load evil: a pickle file holds more than weights")
    assert "\x1b" not in message and "weights_only" not in message and "\n" not in message


def test_memory_is_released_across_checkpoint_switches(settings):
    """Three default <-> single-file switch cycles: RSS after the third stays within 1.3x of after
    the first (unloading runs gc and glibc's malloc_trim). Measured in a fresh process."""
    import json
    import subprocess
    import sys

    from studio.settings import PROJECT_DIR
    from tests.support.tiny_models import write_random_single_file

    write_random_single_file(settings.models_dir / "Stable-diffusion" / "random.safetensors")
    root = settings.models_dir.parent
    script = PROJECT_DIR / "tests" / "support" / "switch_memory.py"
    done = subprocess.run([sys.executable, str(script), str(root), "3", "random.safetensors"],
                          capture_output=True, text=True, timeout=600, cwd=PROJECT_DIR,
                          env={**__import__("os").environ, "PYTHONPATH": str(PROJECT_DIR)})
    assert done.returncode == 0, done.stderr[-2000:]
    readings = json.loads(done.stdout.strip().splitlines()[-1])
    after_first, after_third = readings[1], readings[3]
    assert after_third <= 1.3 * after_first, [round(r / 2**20) for r in readings]


def test_release_memory_trims_the_c_heap(monkeypatch):
    """release_memory asks glibc to return freed arenas (what kept 4 GB after SD 1.5 switches)."""
    import ctypes
    import sys

    from studio.checkpoints import manager as models

    if not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    calls = []

    class FakeLibc:
        def malloc_trim(self, pad):
            calls.append(pad)
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    models.release_memory()
    assert calls == [0]


def test_diffusers_folders_differing_only_in_scheduler_config_hash_differently(settings):
    import json

    from studio.checkpoints.catalog import model_hash

    root = settings.models_dir / "Stable-diffusion"
    _copy_default(root / "first")
    second = _copy_default(root / "second")
    config_file = second / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config["timestep_spacing"] = "leading"
    config_file.write_text(json.dumps(config))
    hash_a, hash_b = (model_hash(find_model(title, settings), settings) for title in ("first", "second"))
    assert hash_a != hash_b and len(hash_a) == len(hash_b) == 10
    third = _copy_default(root / "third")  # identical content: identical hash
    assert model_hash(find_model("third", settings), settings) == hash_a
    (third / "notes.md").write_text("not part of the model")
    (third / "controlnet-extra").mkdir()
    (third / "controlnet-extra" / "config.json").write_text("{}")
    assert model_hash(find_model("third", settings), settings) == hash_a  # only what determines the output


def test_single_file_hash_is_a1111s_sha256_of_the_file(settings):
    import hashlib

    from studio.checkpoints.catalog import model_hash

    root = settings.models_dir / "Stable-diffusion"
    root.mkdir(parents=True)
    (root / "m.safetensors").write_bytes(b"weights")
    assert model_hash(find_model("m", settings), settings) == hashlib.sha256(b"weights").hexdigest()[:10]


def test_hub_model_not_in_the_cache_hashes_as_unknown(settings, no_network, monkeypatch, tmp_path):
    from studio.checkpoints.catalog import ModelEntry, model_hash

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert model_hash(ModelEntry("org/never-cached", "hub", "org/never-cached"), settings) == "unknown"
