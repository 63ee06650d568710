from studio.infotext import params_to_request_fields, parse_infotext, request_params, write_infotext
from studio.request import GenerationRequest

A1111_EXAMPLE = (
    "masterpiece, (best quality:1.2), a castle\n"
    "on a hill\n"
    "Negative prompt: lowres, bad anatomy\n"
    "blurry\n"
    'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567, Size: 512x768, '
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "detail: abc123, style: def456", '
    "Denoising strength: 0.4, Hires upscale: 2, Version: v1.10.1"
)


def test_parse_hand_written_a1111_infotext():
    params = parse_infotext(A1111_EXAMPLE)
    assert params["Prompt"] == "masterpiece, (best quality:1.2), a castle\non a hill"
    assert params["Negative prompt"] == "lowres, bad anatomy\nblurry"
    assert params["Steps"] == "28"
    assert params["Size-1"] == "512" and params["Size-2"] == "768"
    assert params["Lora hashes"] == "detail: abc123, style: def456"  # quoted value with commas
    assert params["Hires upscale"] == "2" and params["Version"] == "v1.10.1"  # unknown keys kept
    fields = params_to_request_fields(params)
    assert (fields["sampler_name"], fields["scheduler"]) == ("DPM++ 2M", "Karras")
    assert fields["cfg_scale"] == 6.5 and fields["seed"] == 1234567
    assert (fields["width"], fields["height"]) == (512, 768)


def test_windows_newlines_and_missing_negative_prompt():
    text = "a cat\r\nin a hat\r\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64"
    params = parse_infotext(text)
    assert params["Prompt"] == "a cat\nin a hat"
    assert params["Negative prompt"] == ""
    assert params["Sampler"] == "Euler a"


def test_prompt_only_text_is_all_prompt():
    params = parse_infotext("just a prompt, with: a colon")
    assert params["Prompt"] == "just a prompt, with: a colon"
    assert "Steps" not in params


def test_write_then_parse_round_trip_restores_the_request():
    request = GenerationRequest(
        prompt='a "red", circle:\nsecond line', negative_prompt="blue, green\nmore", sampler_name="DPM++ 2M Karras",
        steps=13, cfg_scale=4.5, width=72, height=96, seed=42, model="my model, v2",
        vae="Automatic",  # as the engine resolves it (A1111 writes no VAE key for the model's own)
    )
    text = write_infotext(request.prompt, request.negative_prompt, request_params(request, "my model, v2", "0123456789"))
    fields = params_to_request_fields(parse_infotext(text))
    assert GenerationRequest(**fields) == request


def test_schedule_type_is_written_parsed_and_old_karras_names_still_read():
    request = GenerationRequest(prompt="a cat", sampler_name="Euler", scheduler="Exponential", steps=5, seed=1,
                                width=64, height=64, model="m", vae="Automatic")
    text = write_infotext(request.prompt, "", request_params(request, "m", "0123456789"))
    assert "Sampler: Euler, Schedule type: Exponential," in text
    assert GenerationRequest(**params_to_request_fields(parse_infotext(text))) == request
    automatic = write_infotext("a cat", "", request_params(request.replace(scheduler="Automatic"), "m", "0123456789"))
    assert "Schedule type" not in automatic  # as A1111 writes it: only a chosen schedule
    old = params_to_request_fields(parse_infotext("a cat\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 1, Size: 64x64"))
    assert (old["sampler_name"], old["scheduler"]) == ("DPM++ 2M Karras", "Automatic")  # the old name is a sampler
