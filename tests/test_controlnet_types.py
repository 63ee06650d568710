"""ControlNet types that need no detector weights: tile (tile_resample), inpaint (inpaint_only),
shuffle, the threshold and invert preprocessors, and reference_only (attention injection, no
ControlNet model). The tile/inpaint/shuffle ControlNets are tiny random ones built here from the
default model's UNet, saved where a user puts theirs (models/ControlNet/<name>/)."""
from __future__ import annotations

import shutil
from typing import Iterator

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.control.preprocessors import run_preprocessor
from studio.control.simple import inpaint_condition
from studio.request import ControlUnit, GenerationRequest, RequestError
from tests.support.tiny_controlnets import save_random_controlnet

NAMES = {"tile": "control_v11f1e_sd15_tile", "inpaint": "control_v11p_sd15_inpaint",
         "shuffle": "control_v11e_sd15_shuffle"}
BASE = GenerationRequest(prompt="a red square on a blue background", sampler_name="Euler", steps=4, seed=33,
                         width=64, height=64)


def scene(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (30, 40, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(230, 30, 30))
    draw.ellipse((2, 2, size // 4, size // 4), fill=(250, 240, 40))
    return image


def stripes(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    for x in range(0, size, 8):
        draw.rectangle((x, 0, x + 3, size), fill=(10, 120, 10))
    return image


def left_half_mask(size: int = 64) -> Image.Image:
    mask = Image.new("L", (size, size))
    ImageDraw.Draw(mask).rectangle((0, 0, size // 2 - 1, size), fill=255)
    return mask


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


@pytest.fixture(scope="module")
def typed_controlnets(engine) -> Iterator[None]:
    """Tiny random tile, inpaint and shuffle ControlNets for the default model, in models/ControlNet/."""
    model = engine.models.current()
    root = engine.models.settings.models_dir / "ControlNet"
    for index, name in enumerate(NAMES.values()):
        save_random_controlnet(model.pipe.unet, root / name, seed=index)
    yield
    for name in NAMES.values():
        shutil.rmtree(root / name)
        model.controlnets.pop(name, None)


# -- the preprocessors ----------------------------------------------------------------------------------

def test_tile_resample_keeps_the_layout_and_drops_the_detail(tmp_path):
    image = stripes()
    assert np.array_equal(pixels(run_preprocessor("tile_resample", image, 1.0, 0, tmp_path)), pixels(image))
    coarse = pixels(run_preprocessor("tile_resample", image, 8.0, 0, tmp_path))
    assert coarse.shape == (64, 64, 3)
    assert np.abs(np.diff(coarse, axis=1)).mean() < 0.25 * np.abs(np.diff(pixels(image), axis=1)).mean()
    assert abs(coarse.mean() - pixels(image).mean()) < 6  # the same colours on average


def test_threshold_and_invert(tmp_path):
    binary = pixels(run_preprocessor("threshold", scene(), 100, 0, tmp_path))
    assert set(np.unique(binary)) == {0, 255}
    assert binary[32, 32].min() == 0 and binary[6, 6].min() == 255 and binary[60, 60].max() == 0  # red < 100 < yellow
    assert pixels(run_preprocessor("threshold", scene(), 20, 0, tmp_path))[32, 32].min() == 255
    inverted = pixels(run_preprocessor("invert", scene(), 0, 0, tmp_path))
    assert np.array_equal(inverted, 255 - pixels(scene()))


def test_shuffle_moves_content_but_keeps_its_colours(tmp_path):
    image = scene()
    shuffled = pixels(run_preprocessor("shuffle", image, 0, 0, tmp_path))
    assert shuffled.shape == (64, 64, 3)
    assert np.array_equal(shuffled, pixels(run_preprocessor("shuffle", image, 0, 0, tmp_path)))  # reproducible
    assert np.abs(shuffled - pixels(image)).mean() > 20  # the layout moved
    source_colours = {tuple(c) for c in pixels(image).reshape(-1, 3).astype(int)}
    near = [min(np.abs(np.array(c) - s).sum() for s in source_colours) for c in shuffled.reshape(-1, 3)[::37]]
    assert np.median(near) < 40  # mostly the source's colours (bilinear mixes them at their borders)


def test_inpaint_only_marks_the_masked_area_as_minus_one(tmp_path):
    marked = run_preprocessor("inpaint_only", scene(), 0, 0, tmp_path, mask=left_half_mask())
    assert marked.mode == "RGBA" and marked.size == (64, 64)
    condition = inpaint_condition(marked)[0]
    assert (condition[:, :32] == -1).all() and (condition[:, 32:] >= 0).all()
    assert np.allclose(condition[:, 40], pixels(scene())[:, 40] / 255)
    with pytest.raises(ValueError, match="inpaint_only needs a mask"):
        run_preprocessor("inpaint_only", scene(), 0, 0, tmp_path)


def test_inpaint_lama_is_refused_naming_its_weights(tmp_path):
    with pytest.raises(ValueError, match=r"inpaint_only\+lama.*unavailable.*ControlNetLama\.pth.*use inpaint_only"):
        run_preprocessor("inpaint_only+lama", scene(), 0, 0, tmp_path, mask=left_half_mask())


# -- units on the default model -------------------------------------------------------------------------

@pytest.mark.parametrize("kind, module", [("tile", "tile_resample"), ("shuffle", "shuffle")])
def test_tile_and_shuffle_units_steer_the_image(engine, typed_controlnets, kind, module):
    plain = pixels(engine.run(BASE).images[0].image)
    unit = ControlUnit(control_type=kind, image=scene(), module=module, threshold_a=2.0)
    result = engine.run(BASE.replace(controlnet_units=(unit,)))
    assert result.controls.titles == (NAMES[kind],)
    assert np.abs(pixels(result.images[0].image) - plain).mean() > 0.5
    off = engine.run(BASE.replace(controlnet_units=(ControlUnit(**{**unit.__dict__, "weight": 0.0}),)))
    assert np.array_equal(pixels(off.images[0].image), plain)


def test_inpaint_unit_takes_the_inpaint_mask_and_gives_the_controlnet_minus_one(engine, typed_controlnets):
    unit = ControlUnit(control_type="inpaint", module="inpaint_only")  # the source image and the tab's mask
    net = engine.run(BASE.replace(steps=2, controlnet_units=(ControlUnit(control_type="inpaint", image=scene(),
                                                                         module="inpaint_only",
                                                                         mask=left_half_mask()),))).model
    seen = []
    cn = net.controlnets[NAMES["inpaint"]]
    handle = cn.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["controlnet_cond"].clone()),
                                          with_kwargs=True)
    try:
        result = engine.run(BASE.replace(init_image=scene(), mask=left_half_mask(), denoising_strength=0.9,
                                         controlnet_units=(unit,)))
    finally:
        handle.remove()
    assert result.images[0].image.size == (64, 64)
    condition = seen[0][0]  # (3, H, W) of the first image
    assert condition[:, :, :30].max() == -1 and condition[:, :, 34:].min() >= 0
    with pytest.raises(RequestError, match="inpaint_only needs a mask"):
        engine.run(BASE.replace(controlnet_units=(ControlUnit(control_type="inpaint", image=scene(),
                                                              module="inpaint_only"),)))


def test_reference_only_steers_self_attention_without_a_controlnet(engine):
    model = engine.models.current()
    loaded = set(model.controlnets)
    plain = pixels(engine.run(BASE).images[0].image)
    reference = ControlUnit(control_type="reference", image=scene(), module="reference_only", threshold_a=0.5)
    first = engine.run(BASE.replace(controlnet_units=(reference,)))
    again = engine.run(BASE.replace(controlnet_units=(reference,)))
    other = engine.run(BASE.replace(controlnet_units=(ControlUnit(**{**reference.__dict__, "image": stripes()}),)))
    assert set(model.controlnets) == loaded  # no ControlNet was loaded
    assert first.controls.titles == ("None",)
    image = pixels(first.images[0].image)
    assert np.abs(image - plain).mean() > 0.5
    assert np.array_equal(image, pixels(again.images[0].image))  # reproducible
    assert np.abs(image - pixels(other.images[0].image)).mean() > 0.5  # the reference matters
    off = engine.run(BASE.replace(controlnet_units=(ControlUnit(**{**reference.__dict__, "weight": 0.0}),)))
    assert np.array_equal(pixels(off.images[0].image), plain)  # weight 0: no layer takes the reference
    after = engine.run(BASE)
    assert np.array_equal(pixels(after.images[0].image), plain)  # the UNet's processors are restored


def test_reference_only_with_a_controlnet_unit_and_in_img2img(engine):
    reference = ControlUnit(control_type="reference", image=stripes(), module="reference_only")
    canny = ControlUnit(control_type="canny", image=scene(), module="canny")
    both = engine.run(BASE.replace(steps=2, controlnet_units=(canny, reference)))
    assert both.controls.titles == ("controlnet-canny", "None") and len(both.controls.images) == 2
    img2img = engine.run(BASE.replace(steps=2, init_image=scene(), controlnet_units=(reference,)))
    assert img2img.images[0].image.size == (64, 64)
