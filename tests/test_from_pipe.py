"""Mode pipelines of the families the studio ships are built without diffusers' AutoPipeline module
(studio.generation.from_pipe): the same class, config and components AutoPipeline gives."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR
from studio.generation import from_pipe
from tests.support.tiny_sdxl import write_tiny_sdxl_base

AUTO = {"txt2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image,
        "inpaint": AutoPipelineForInpainting}


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    sdxl = write_tiny_sdxl_base(tmp_path_factory.mktemp("sdxl") / "base")
    return {"sd": StableDiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR, safety_checker=None,
                                                          requires_safety_checker=False),
            "sdxl": StableDiffusionXLPipeline.from_pretrained(Path(sdxl))}


def _same(built, auto) -> None:
    assert type(built) is type(auto)
    assert dict(built.config) == dict(auto.config)
    assert built.components.keys() == auto.components.keys()
    assert all(built.components[key] is auto.components[key] for key in auto.components)  # shared, not copied


@pytest.mark.parametrize("family", ["sd", "sdxl"])
@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_a_known_family_builds_what_autopipeline_builds(pipelines, family, mode):
    pipe = pipelines[family]
    cls = from_pipe.known_class(pipe, mode)
    assert cls is not None
    _same(from_pipe.build(cls, pipe), AUTO[mode].from_pipe(pipe))


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_from_a_pipeline_that_from_pipe_made_and_in_bf16(pipelines, mode):
    pipe = pipelines["sd"]
    img2img = from_pipe.build(from_pipe.known_class(pipe, "img2img"), pipe)
    again = from_pipe.build(from_pipe.known_class(pipe, mode), img2img)
    _same(again, AUTO[mode].from_pipe(img2img))
    half = StableDiffusionPipeline(**{**pipe.components, "unet": pipe.unet.to(torch.bfloat16)})
    try:
        built = from_pipe.build(from_pipe.known_class(half, mode), half)
        assert built.unet.dtype == torch.bfloat16 and built.vae.dtype == torch.float32  # nothing cast
    finally:
        pipe.unet.to(torch.float32)


def test_other_families_are_left_to_autopipeline(pipelines):
    class Custom(StableDiffusionPipeline):
        pass

    pipe = pipelines["sd"]
    assert from_pipe.known_class(Custom(**pipe.components), "txt2img") is None
    assert from_pipe.known_class(pipe, "upscale") is None
