"""Outpainting: the canvas grows, the new area is generated, original pixels beyond the seam keep their bytes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.generation.outpaint import extend
from studio.records.infotext import params_to_request_fields, parse_infotext
from studio.request import GenerationRequest, RequestError
from studio.service.container import Services, build_services
from studio.service.extensions.manager import ExtensionManager


def scene() -> Image.Image:
    image = Image.new("RGB", (64, 64), (40, 60, 200))
    ImageDraw.Draw(image).ellipse((14, 14, 50, 50), fill=(220, 30, 30))
    noise = np.random.default_rng(3).integers(0, 30, (64, 64, 3), dtype=np.uint8)  # bytes that a resample would change
    return Image.fromarray(np.asarray(image) + noise)


BASE = GenerationRequest(prompt="a red circle on a blue background", sampler_name="Euler", steps=3, cfg_scale=6,
                         width=64, height=64, seed=11, init_image=scene(), denoising_strength=0.9, mask_blur=4,
                         outpaint_right=32, outpaint_down=16)


@pytest.fixture(scope="module")
def studio(engine, shared_settings) -> Services:
    return build_services(shared_settings, engine=engine, extensions=ExtensionManager(shared_settings))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_canvas_and_mask():
    canvas, mask = extend(BASE.replace(outpaint_left=8, outpaint_up=8, outpaint_fill=0))
    assert canvas.size == mask.size == (104, 88)
    assert np.array_equal(pixels(canvas)[8:72, 8:72], pixels(scene()))
    assert np.array_equal(pixels(canvas)[8:72, 103], pixels(scene())[:, 63])  # edge stretched
    m = np.asarray(mask)
    assert m[8:72, 8:72].max() == 0 and m[:8].min() == 255 and m[:, 72:].min() == 255
    noisy, _ = extend(BASE.replace(outpaint_fill=1))
    assert pixels(noisy)[:, 64:].std() > 20
    filled = pixels(extend(BASE)[0]).astype(int)  # the default: A1111's "fill", smooth colours of the surroundings
    assert np.array_equal(filled[:64, :64], pixels(scene()))
    assert np.abs(np.diff(filled[:, 64:], axis=1)).mean() < 2 < np.abs(np.diff(pixels(noisy)[:, 64:].astype(int), axis=1)).mean()


@pytest.mark.parametrize("fill", [0, 1, 2])
def test_outpaint_keeps_the_original_bytes_beyond_the_seam(studio, fill):
    job = studio.generation.submit(BASE.replace(outpaint_fill=fill))
    assert job.request.mode == "inpaint"
    out = pixels(Image.open(job.images[0].path))
    assert out.shape == (80, 96, 3)
    seam = BASE.mask_blur
    assert np.array_equal(out[:64 - seam, :64 - seam], pixels(scene())[:64 - seam, :64 - seam])
    stretched = pixels(extend(BASE.replace(outpaint_fill=fill))[0])
    assert np.abs(out[:, 70:].astype(int) - stretched[:, 70:]).mean() > 2  # the new area was generated
    params = parse_infotext(job.images[0].infotext)
    assert params["Outpaint right"] == "32" and params["Outpaint down"] == "16"
    assert (params["Size-1"], params["Size-2"]) == ("96", "80")  # the file's size, not the 64x64 source
    fields = params_to_request_fields(params)
    assert "width" not in fields  # outpainting samples at the canvas's size
    assert (fields["outpaint_right"], fields["outpaint_down"], fields["outpaint_fill"]) == (32, 16, fill)
    assert "outpaint_left" not in fields


def test_outpaint_with_an_inpaint_mask_repaints_both_and_reproduces(studio):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 20, 20))
    job = studio.generation.submit(BASE.replace(mask=mask))
    out = pixels(Image.open(job.images[0].path))
    original = pixels(scene())
    assert np.abs(out[8:20, 8:20].astype(int) - original[8:20, 8:20]).mean() > 2
    assert np.array_equal(out[30:56, 30:56], original[30:56, 30:56])
    done = studio.generation.reproduce_image(job.images[0].path)
    assert np.array_equal(pixels(done.image.image), out)


def test_outpaint_needs_an_image_and_sane_numbers():
    with pytest.raises(RequestError, match="outpainting needs an init image"):
        GenerationRequest(outpaint_left=8).validate()
    with pytest.raises(RequestError, match="outpaint_up must be between 0 and 512"):
        BASE.replace(outpaint_up=-8).validate()
