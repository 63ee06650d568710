"""True inpainting checkpoints (9-channel UNet) are detected from the UNet and run as such."""
import numpy as np
import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image, ImageDraw

from studio.checkpoints.catalog import DEFAULT_MODEL_DIR
from studio.checkpoints.manager import ModelManager
from studio.generation import imageops
from studio.generation.engine import Engine
from studio.generation.pipelines import pipeline_for
from studio.request import GenerationRequest, RequestError


@pytest.fixture
def inpainting_model(settings):
    """A tiny 9-channel inpainting checkpoint built from the default model's components."""
    base = StableDiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR, dtype=torch.float32)
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**base.unet.config, "in_channels": 9})
    pipe = StableDiffusionInpaintPipeline(base.vae, base.text_encoder, base.tokenizer, unet, base.scheduler,
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(settings.models_dir / "Stable-diffusion" / "tiny-inpainting")
    return "tiny-inpainting"


def test_nine_channel_unet_inpaints_and_keeps_outside_pixels(settings, inpainting_model):
    engine = Engine(ModelManager(settings))
    image = Image.new("RGB", (64, 64), (30, 80, 220))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(220, 30, 30))
    mask = Image.new("L", (64, 64))
    ImageDraw.Draw(mask).rectangle((20, 20, 40, 40), fill=255)
    result = engine.run(GenerationRequest(prompt="a green circle", steps=3, seed=1, init_image=image, mask=mask,
                                          model=inpainting_model, mask_blur=2))
    model = engine.models.current()
    assert model.pipe.unet.config.in_channels == 9
    assert type(pipeline_for(model, "inpaint")).__name__ == "StableDiffusionInpaintPipeline"
    out = np.asarray(result.images[0].image)
    outside = np.asarray(imageops.dilate(mask, 2)) == 0
    assert np.array_equal(out[outside], np.asarray(image)[outside])
    with pytest.raises(RequestError, match="is an inpainting model"):
        engine.run(GenerationRequest(prompt="x", steps=2, model=inpainting_model))
