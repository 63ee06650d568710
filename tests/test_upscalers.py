"""Upscaler registry: names, spandrel loading of ESRGAN files (.safetensors and weights-only .pth),
tiled inference, and refusal of files that are not plain weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.checkpoints.upscaler_files import LATENT_UPSCALERS
from studio.checkpoints.upscalers import Upscalers, load_model_file, run_tiled, upscale_latents
from studio.errors import ModelError
from studio.request import RequestError
from tests.support.esrgan import write_esrgan


def gradient(size: int = 48) -> Image.Image:
    x = np.linspace(0, 255, size, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(x, (size, 1)), np.tile(x[:, None], (1, size)),
                                     np.full((size, size), 90, np.uint8)], axis=-1))


def test_registry_has_a1111_names_and_model_files(tmp_path: Path) -> None:
    write_esrgan(tmp_path / "ESRGAN", "4x-tiny")
    write_esrgan(tmp_path / "RealESRGAN", "tiny-pth", ".pth")
    (tmp_path / "SwinIR").mkdir()
    (tmp_path / "SwinIR" / "notes.txt").write_text("not a model")
    names = Upscalers(tmp_path).names()
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    assert set(LATENT_UPSCALERS) <= set(names)
    assert {"Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
            "Latent (nearest)", "Latent (nearest-exact)"} == set(LATENT_UPSCALERS)
    assert "4x-tiny" in names and "tiny-pth" in names and "notes" not in names


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_esrgan_file_loads_through_spandrel_and_upscales_4x(tmp_path: Path, suffix: str) -> None:
    path = write_esrgan(tmp_path / "ESRGAN", "tiny", suffix)
    descriptor = load_model_file(path)
    assert descriptor.architecture.name == "ESRGAN" and descriptor.scale == 4
    out = Upscalers(tmp_path).upscale(gradient(), "tiny", 192, 192)
    assert out.size == (192, 192) and out.mode == "RGB"


def test_tiles_blend_close_to_one_pass(tmp_path: Path) -> None:
    descriptor = load_model_file(write_esrgan(tmp_path / "ESRGAN"))
    image = gradient(80)
    whole = np.asarray(run_tiled(descriptor, image, tile=1000), dtype=np.int16)
    tiled = np.asarray(run_tiled(descriptor, image, tile=32, overlap=8), dtype=np.int16)
    assert whole.shape == tiled.shape == (320, 320, 3)
    assert np.abs(whole - tiled).mean() < 2.0  # seams blended: nearly the untiled result


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / "ESRGAN"
    folder.mkdir()
    torch.save({"x": Evil()}, folder / "evil.pth")
    with pytest.raises(ModelError, match="weights-only"):
        Upscalers(tmp_path).upscale(gradient(), "evil", 96, 96)


def test_unknown_and_latent_names_are_refused_for_pixels(tmp_path: Path) -> None:
    upscalers = Upscalers(tmp_path)
    with pytest.raises(RequestError, match="unknown upscaler 'nope'"):
        upscalers.upscale(gradient(), "nope", 96, 96)
    with pytest.raises(RequestError, match="unknown upscaler 'Latent'"):
        upscalers.upscale(gradient(), "Latent", 96, 96)


def test_pixel_upscalers_resize_exactly() -> None:
    upscalers = Upscalers(Path("/nonexistent"))
    assert upscalers.upscale(gradient(), "Lanczos", 100, 60).size == (100, 60)
    nearest = upscalers.upscale(gradient(4), "Nearest", 8, 8)
    assert np.array_equal(np.asarray(nearest)[::2, ::2], np.asarray(gradient(4)))


def test_latent_upscale_modes() -> None:
    latents = torch.randn(1, 4, 8, 8)
    for name in LATENT_UPSCALERS:
        assert upscale_latents(latents, 128, 96, name).shape == (1, 4, 12, 16)
