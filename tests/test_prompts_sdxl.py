"""A1111 prompt syntax on SDXL: both text encoders and the pooled embedding, on a tiny random SDXL
pipeline built here (diffusers' own test configs; the tokenizers are the default model's)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from studio.networks.discovery import NetworkFile
from studio.networks.embedding_names import expansion, placeholder
from studio.networks.embeddings import load_embedding, read_embedding
from studio.prompting.conditioning import prepare_prompts
from studio.request import RequestError


@pytest.fixture(scope="module")
def sdxl(engine) -> StableDiffusionXLPipeline:
    return build_sdxl(engine)


def build_sdxl(engine, separate_tokenizers: bool = False) -> StableDiffusionXLPipeline:
    tokenizer = engine.models.current().pipe.tokenizer
    tokenizer_2 = copy.deepcopy(tokenizer) if separate_tokenizers else tokenizer  # an embedding adds a token to each
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=1)
    vae = AutoencoderKL(block_out_channels=[32, 32], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=16, sample_size=16)
    config = CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37,
                            num_attention_heads=4, num_hidden_layers=3, vocab_size=len(tokenizer),
                            projection_dim=32, hidden_act="gelu")
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(config), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(config), tokenizer_2=tokenizer_2, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                         beta_schedule="scaled_linear", timestep_spacing="leading"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, prompt: str, negative: str = "blue", clip_skip: int = 1) -> np.ndarray:
    steps = 4
    inputs = prepare_prompts(pipe, prompt, negative, steps, clip_skip)
    conditioning = inputs.conditioning

    def swap(p, step, timestep, tensors):
        if conditioning is None or not conditioning.changes:
            return {}
        return conditioning.loop_tensors(step + 1, 1, p.do_classifier_free_guidance)

    names = conditioning.loop_tensor_names if conditioning is not None and conditioning.changes else []
    with torch.inference_mode():
        image = pipe(**inputs.pipeline_kwargs(1), num_inference_steps=steps, guidance_scale=5, width=64, height=64,
                     generator=torch.Generator().manual_seed(3), output_type="np",
                     callback_on_step_end=swap, callback_on_step_end_tensor_inputs=names).images[0]
    return image


def test_sdxl_embeddings_match_diffusers_and_carry_pooled(sdxl):
    inputs = prepare_prompts(sdxl, "a red circle BREAK", "blue", 4)  # trailing BREAK: our encoder, one chunk
    kwargs = inputs.pipeline_kwargs(1)
    with torch.inference_mode():
        theirs = sdxl.encode_prompt("a red circle", device="cpu", negative_prompt="blue")
    assert kwargs["prompt_embeds"].shape == (1, 77, 64)  # both encoders concatenated
    assert torch.equal(kwargs["prompt_embeds"], theirs[0]) and torch.equal(kwargs["negative_prompt_embeds"], theirs[1])
    assert torch.equal(kwargs["pooled_prompt_embeds"], theirs[2])
    assert torch.equal(kwargs["negative_pooled_prompt_embeds"], theirs[3])


def test_sdxl_weights_schedules_and_long_prompts_change_the_image(sdxl):
    base = run(sdxl, "a red circle")
    assert np.array_equal(run(sdxl, "a (red:1.0) circle"), base)
    assert not np.array_equal(run(sdxl, "a (red:1.6) circle"), base)
    assert not np.array_equal(run(sdxl, "a [red|green] circle"), base)
    long = "a red circle on a blue background, " * 12
    assert not np.array_equal(run(sdxl, long + "green"), run(sdxl, long + "yellow"))
    assert not np.array_equal(run(sdxl, "a red circle", clip_skip=2), base)


def test_an_sdxl_embedding_feeds_both_text_encoders_and_an_sd1_one_is_refused(engine, tmp_path):
    """A1111's SDXL embedding file: `clip_l` and `clip_g` vectors, one per text encoder."""
    pipe = build_sdxl(engine, separate_tokenizers=True)
    prompt = f"a red circle {expansion('glowstyle', 2)}"  # what the prompt's "glowstyle" is put in as
    plain = run(pipe, "a red circle")
    path = tmp_path / "glowstyle.safetensors"
    generator = torch.Generator().manual_seed(5)
    save_file({"clip_l": torch.randn(2, 32, generator=generator) * 3,
               "clip_g": torch.randn(2, 32, generator=generator) * 3}, str(path))
    entry = NetworkFile("embedding", "glowstyle", path)
    load_embedding(pipe, entry, read_embedding(entry, allow_pickle=False), "tiny-sdxl")
    token = placeholder("glowstyle")  # added under its placeholder token, never a word of the vocabulary
    assert pipe.tokenizer.convert_tokens_to_ids(token) != pipe.tokenizer.unk_token_id
    assert pipe.tokenizer_2.convert_tokens_to_ids(token) != pipe.tokenizer_2.unk_token_id
    learned = pipe.text_encoder_2.get_input_embeddings().weight[pipe.tokenizer_2.convert_tokens_to_ids(token)]
    assert not torch.equal(learned, pipe.text_encoder.get_input_embeddings().weight[
        pipe.tokenizer.convert_tokens_to_ids(token)])  # each encoder got its own vectors
    assert np.abs(run(pipe, prompt) - plain).max() > 1e-3

    sd1 = tmp_path / "flat.safetensors"
    save_file({"emb_params": torch.randn(1, 32)}, str(sd1))
    flat = NetworkFile("embedding", "flat", sd1)
    with pytest.raises(RequestError, match="embedding flat.safetensors is for SD 1.x/2.x models; it does not fit tiny-sdxl"):
        load_embedding(pipe, flat, read_embedding(flat, allow_pickle=False), "tiny-sdxl")
