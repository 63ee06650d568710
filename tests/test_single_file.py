"""Single-file (original LDM layout) checkpoints: offline loading, config picking, refusals.

Runs offline (conftest sets HF_HUB_OFFLINE) on CPU in seconds, with the `settings` fixture's
tmp models/ and cache/: the only real model is the embedded default one, written out as
a single .safetensors with tests/support/ldm_convert.py; SD 1.5 / SDXL checkpoints are faked
with just the tensors whose shapes pick the config.
"""
from __future__ import annotations

import json
import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import CLIPTokenizer

from studio.checkpoints import clip_vocab, single_file
from studio.checkpoints.catalog import discover_models, find_model, stable_diffusion_dir
from studio.checkpoints.loading import load_pipeline
from studio.errors import ModelError
from studio.settings import Settings
from tests.support.ldm_convert import TEXT_PREFIX, pipeline_to_ldm, save_single_file

CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP ids of "a photo of a cat"
UNET = "model.diffusion_model."
COMPONENTS = ("unet", "vae", "text_encoder")

needs_default_model = pytest.mark.skipif(
    not (single_file.DEFAULT_MODEL_DIR / "model_index.json").is_file(), reason="embedded default model not built"
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # The machine's other core is busy; more threads only contend.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _stored_dtype(folder: Path) -> torch.dtype:
    """The dtype the default model ships in, so the checkpoint is as a release would write it."""
    with safe_open(str(folder / "unet" / "diffusion_pytorch_model.safetensors"), framework="pt") as handle:
        return handle.get_tensor(next(iter(handle.keys()))).dtype


@pytest.fixture(scope="module")
def folder_pipe() -> DiffusionPipeline:
    pipe = DiffusionPipeline.from_pretrained(single_file.DEFAULT_MODEL_DIR, torch_dtype=torch.float32,
                                             local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe: DiffusionPipeline) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(1234)
    return pipe("a red circle on a blue background", num_inference_steps=4, height=64, width=64,
                generator=generator, output_type="np").images[0]


# ------------------------------------------------------------------ (a) the default model as one file

@needs_default_model
def test_default_model_round_trips_through_a_single_file(folder_pipe: DiffusionPipeline, settings: Settings) -> None:
    path = stable_diffusion_dir(settings) / "default-64px.safetensors"
    save_single_file(folder_pipe, path, dtype=_stored_dtype(single_file.DEFAULT_MODEL_DIR))
    entry = find_model("default-64px", settings)
    assert (entry.kind, entry.path) == ("single_file", path)

    pipe = single_file.load(path, settings, torch.float32)
    pipe.set_progress_bar_config(disable=True)

    assert type(pipe) is type(folder_pipe)
    for name in COMPONENTS:
        expected, loaded = getattr(folder_pipe, name).state_dict(), getattr(pipe, name).state_dict()
        assert loaded.keys() == expected.keys(), name
        different = [k for k in expected if not torch.equal(loaded[k].to(expected[k].dtype), expected[k])]
        assert not different, f"{name}: {different[:5]}"
    assert pipe.vae.config.scaling_factor == folder_pipe.vae.config.scaling_factor
    assert pipe.scheduler.config == folder_pipe.scheduler.config

    image = _generate(pipe)
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image, _generate(folder_pipe))


@needs_default_model
def test_config_cache_holds_configs_only(folder_pipe: DiffusionPipeline, settings: Settings) -> None:
    """With weights beside the configs, diffusers would quietly fill in a component the file lacks."""
    target = single_file.with_tokenizer(single_file.DEFAULT_MODEL_DIR, settings)
    assert target.parent == settings.cache_dir / "configs"
    assert (target / "unet" / "config.json").is_file()
    assert not [p for p in target.rglob("*") if p.suffix in (".safetensors", ".bin", ".ckpt")]
    assert not (target / "tokenizer" / "vocab.json").exists()  # the default model keeps its own tokenizer
    assert single_file.with_tokenizer(single_file.DEFAULT_MODEL_DIR, settings) == target


@needs_default_model
def test_checkpoint_without_text_encoder_is_refused(folder_pipe: DiffusionPipeline, settings: Settings) -> None:
    state = {k: v.detach().contiguous().clone() for k, v in pipeline_to_ldm(folder_pipe).items()
             if not k.startswith(TEXT_PREFIX)}
    path = stable_diffusion_dir(settings) / "no-text.safetensors"
    path.parent.mkdir(parents=True)
    save_file(state, str(path))
    with pytest.raises(ModelError, match="no-text.safetensors.*CLIPTextModel.*missing"):
        single_file.load(path, settings, torch.float32)


@needs_default_model
def test_checkpoint_with_missing_unet_weights_is_refused(folder_pipe: DiffusionPipeline, settings: Settings) -> None:
    state = {k: v.detach().contiguous().clone() for k, v in pipeline_to_ldm(folder_pipe).items()
             if not k.startswith(UNET + "out.")}
    path = stable_diffusion_dir(settings) / "truncated.safetensors"
    path.parent.mkdir(parents=True)
    save_file(state, str(path))
    with pytest.raises(ModelError, match="truncated.safetensors.*missing"):
        single_file.load(path, settings, torch.float32)


# ------------------------------------------------------------------ (b) shipped configs by shape

def _shape_only_checkpoint(path: Path, in_channels: int, channels: int, context: int) -> Path:
    """Just the tensors pick_config_dir reads, with the shapes of the architecture named."""
    save_file({
        UNET + "input_blocks.0.0.weight": torch.zeros(channels, in_channels, 3, 3, dtype=torch.float16),
        UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(channels, context, dtype=torch.float16),
    }, str(path))
    return path


@pytest.mark.parametrize(("in_channels", "context", "arch"), [
    (4, 768, "sd15"),
    (9, 768, "sd15-inpainting"),
    (4, 2048, "sdxl"),
    (4, 1024, "sd2-512-base"),  # SD 2.x: 512-base first; 768-v shares its shapes (v-prediction decides)
    (9, 1024, "sd2-inpainting"),
])
def test_shipped_config_is_picked_by_shapes(tmp_path: Path, in_channels: int, context: int, arch: str) -> None:
    path = _shape_only_checkpoint(tmp_path / f"{arch}.safetensors", in_channels, 320, context)
    assert single_file.pick_config_dir(single_file.read_shapes(path)) == single_file.SHIPPED_CONFIGS / arch


def test_an_sdxl_refiner_file_picks_the_refiner_config(tmp_path: Path) -> None:
    arch = "sdxl-refiner"  # 384 channels, the OpenCLIP bigG context (1280) alone
    path = _shape_only_checkpoint(tmp_path / f"{arch}.safetensors", 4, 384, 1280)
    assert single_file.pick_config_dir(single_file.read_shapes(path)) == single_file.SHIPPED_CONFIGS / arch


def test_sd2_shapes_match_both_512_base_and_768_v(tmp_path: Path) -> None:
    path = _shape_only_checkpoint(tmp_path / "sd21.safetensors", 4, 320, 1024)
    found = single_file.matching_config_dirs(single_file.read_shapes(path))
    assert found == [single_file.SHIPPED_CONFIGS / "sd2-512-base", single_file.SHIPPED_CONFIGS / "sd2-768-v"]


def test_unknown_architecture_names_its_shapes(tmp_path: Path) -> None:
    path = _shape_only_checkpoint(tmp_path / "sd3ish.safetensors", 4, 320, 4096)  # no shipped config
    with pytest.raises(ModelError, match="in_channels=4, channels=320, context=4096"):
        single_file.pick_config_dir(single_file.read_shapes(path))


def test_non_sd_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ModelError, match="not a Stable Diffusion checkpoint"):
        single_file.pick_config_dir(single_file.read_shapes(path))


@pytest.mark.parametrize("arch", ["sd15", "sd15-inpainting", "sdxl", "sdxl-refiner", "sd2-512-base", "sd2-768-v",
                                  "sd2-inpainting"])
def test_shipped_config_folder_is_complete(arch: str, settings: Settings) -> None:
    """Every component the pipeline needs has a config; tokenizers come out as CLIP's."""
    source = single_file.SHIPPED_CONFIGS / arch
    folder = single_file.with_tokenizer(source, settings)
    index = json.loads((folder / "model_index.json").read_text())
    pipeline_class = getattr(diffusers, index["_class_name"])
    assert hasattr(pipeline_class, "from_single_file")
    assert all(index[key] == [None, None] for key in ("safety_checker", "feature_extractor") if key in index)
    assert "feature_extractor" in index  # nothing outside the shipped folder is needed
    for name, (library, _class_name) in ((k, v) for k, v in index.items() if isinstance(v, list)):
        if library is None:
            continue
        config_name = "scheduler_config.json" if name == "scheduler" else "config.json"
        if name.startswith("tokenizer"):
            tokenizer = CLIPTokenizer.from_pretrained(folder / name)
            assert tokenizer("a photo of a cat").input_ids == CAT_IDS
            pad = "!" if name == "tokenizer_2" or arch.startswith("sd2") else "<|endoftext|>"
            assert tokenizer.pad_token == pad and tokenizer.model_max_length == 77
        else:
            assert (folder / name / config_name).is_file(), f"{arch}/{name}"
    for encoder in ("text_encoder", "text_encoder_2"):
        if index.get(encoder, [None])[0] is not None:  # the SDXL refiner has the second one only
            assert json.loads((folder / encoder / "config.json").read_text())["vocab_size"] == clip_vocab.VOCAB_SIZE


# ------------------------------------------------------------------ (c) CLIP vocabulary

def test_clip_vocab_gives_clip_ids(tmp_path: Path) -> None:
    clip_vocab.write_vocab(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == clip_vocab.VOCAB_SIZE
    assert tokenizer("a photo of a cat").input_ids == CAT_IDS
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.model_max_length == 77


def test_clip_vocab_keeps_existing_tokenizer_config(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"pad_token": "!", "model_max_length": 77}))
    clip_vocab.write_vocab(tmp_path)
    assert CLIPTokenizer.from_pretrained(tmp_path).pad_token_id == 0  # "!" is CLIP's first token


# ------------------------------------------------------------------ (d) corrupt file

def test_corrupt_safetensors_is_a_model_error(settings: Settings) -> None:
    path = stable_diffusion_dir(settings) / "broken.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(random.Random(0).randbytes(4096))
    entry = find_model("broken", settings)
    with pytest.raises(ModelError, match=r"broken\.safetensors is not a readable \.safetensors file"):
        load_pipeline(entry, settings)


# ------------------------------------------------------------------ (e) pickles

class _WritesMarker:
    """Unpickling this writes a file: what a malicious .ckpt would do, harmlessly."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.write_text, (self.marker, "unpickled"))


def _malicious_ckpt(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {UNET + "input_blocks.0.0.weight": torch.zeros(1), "payload": _WritesMarker(marker)}}, path)
    return path


def test_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    """Guards the test below: the payload must be live, or refusing it would prove nothing."""
    marker = tmp_path / "ran"
    path = _malicious_ckpt(tmp_path / "probe.ckpt", marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "unpickled"
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_pickle_checkpoint_is_refused_and_never_runs(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _malicious_ckpt(stable_diffusion_dir(settings) / "evil.ckpt", marker)
    entry = find_model("evil", settings)
    assert entry.kind == "pickle"
    assert entry in discover_models(settings)

    with pytest.raises(ModelError, match="pickle checkpoint.*--allow-pickle"):
        load_pipeline(entry, settings.replace(allow_pickle=False))
    assert not marker.exists()

    with pytest.raises(ModelError, match=r"evil\.ckpt could not be read safely: a pickle file holds more") as refused:
        load_pipeline(entry, settings.replace(allow_pickle=True))
    assert not marker.exists()
    message = str(refused.value)  # one plain sentence: no terminal codes, no advice to disable the check
    assert "\x1b" not in message and "weights_only" not in message and "\n" not in message
