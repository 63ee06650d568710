"""Per-family default sizes and aspect-ratio presets (studio/checkpoints/sizes.py, studio/ui/sizes.py)."""
from __future__ import annotations

import pytest

from studio.checkpoints.sizes import ASPECT_RATIOS, size_for
from studio.ui.sizes import follow_model


@pytest.mark.parametrize(("native", "ratio", "expected"), [
    (512, "1:1", (512, 512)),  # SD 1.x, SD 2.x base
    (768, "1:1", (768, 768)),  # SD 2.x 768-v
    (1024, "1:1", (1024, 1024)),  # SDXL
    (1024, "16:9", (1344, 768)),  # SDXL's usual 16:9 bucket
    (1024, "9:16", (768, 1344)),
    (512, "3:2", (640, 448)),
    (64, "16:9", (88, 64)),  # the embedded 64 px model: multiples of 8, at least 64
])
def test_size_for_keeps_about_the_models_pixel_count(native, ratio, expected):
    assert size_for(native, ratio) == expected


def test_every_ratio_fits_the_request_limits():
    for native in (64, 512, 768, 1024):
        for ratio in ASPECT_RATIOS:
            width, height = size_for(native, ratio)
            assert 64 <= width <= 2048 and 64 <= height <= 2048 and width % 8 == 0 and height % 8 == 0


def test_the_size_follows_the_model_only_while_it_is_the_models_default():
    assert follow_model(512, 1024, 512, 512, "1:1") == (1024, 1024)
    assert follow_model(512, 1024, 640, 448, "3:2") == size_for(1024, "3:2") == (1280, 832)
    kept = follow_model(512, 1024, 600, 512, "1:1")  # the user's own width
    assert all(getattr(update, "get", lambda key: None)("__type__") == "update" for update in kept)


@pytest.mark.parametrize(("arch", "size"), [
    ("sd15", 512), ("sd15-inpainting", 512), ("sd2-512-base", 512), ("sd2-768-v", 768), ("sd2-inpainting", 512),
    ("sdxl", 1024), ("sdxl-refiner", 1024)])
def test_bundled_configs_give_each_family_its_default_size(arch, size):
    """LoadedModel.native_size: the UNet's sample size times the VAE's scale factor (2 ** (levels - 1))."""
    import json

    from studio.checkpoints.single_file import SHIPPED_CONFIGS

    unet = json.loads((SHIPPED_CONFIGS / arch / "unet" / "config.json").read_text())
    vae = json.loads((SHIPPED_CONFIGS / arch / "vae" / "config.json").read_text())
    assert unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1) == size
