import shutil

import numpy as np
import pytest

from studio.engine import Engine
from studio.errors import ModelError
from studio.models import DEFAULT_MODEL_DIR, DEFAULT_MODEL_TITLE, ModelManager, discover_models, find_model
from studio.request import GenerationRequest


def test_default_model_is_always_offered_first(settings):
    entries = discover_models(settings)
    assert entries[0].title == DEFAULT_MODEL_TITLE and entries[0].kind == "default"


def test_diffusers_folder_in_models_tree_is_discovered_and_generates(settings):
    folder = settings.models_dir / "Stable-diffusion" / "my-diffusers-model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("controlnet-*"))
    (settings.models_dir / "Stable-diffusion" / "notes.txt").write_text("not a model")
    titles = [entry.title for entry in discover_models(settings)]
    assert titles == [DEFAULT_MODEL_TITLE, "my-diffusers-model"]
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
