from studio.records.infotext import params_to_request_fields, parse_infotext, request_params, write_infotext
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


A1111_PARAM = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'  # A1111's own regex


def test_scanner_finds_the_same_pairs_as_a1111s_regex():
    import random
    import re

    from studio.records.infotext import find_params

    pattern = re.compile(A1111_PARAM)
    alphabet = 'ab :,"\\-/\t_é\u00a01'
    rng = random.Random(0)
    for _ in range(20000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert find_params(line) == pattern.findall(line), line
    line = A1111_EXAMPLE.splitlines()[-1]
    assert find_params(line) == pattern.findall(line)


def _parse_seconds(line: str) -> float:
    import time

    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        parse_infotext("a prompt\n" + line)
        best = min(best, time.process_time() - start)
    return best


def test_parse_time_grows_linearly_with_the_last_line():
    """Issue 13: A1111's regex is quadratic on a long last line (64,000 characters took 16-61 s).
    20x the length must cost far less than 400x the time (allowing noise: < 60x)."""
    for unit in ("a" * 9 + " ", "ab, cd: e" + '"x\\'):
        small, large = unit * 200, unit * 4000
        assert _parse_seconds(large) < 60 * max(_parse_seconds(small), 1e-4)
    megabyte = "Steps: 20, Sampler: Euler, Seed: 1, " + "k" * 1_000_000
    params = parse_infotext("a prompt\n" + megabyte)
    assert params["Steps"] == "20" and params["Seed"] == "1"
    assert _parse_seconds("x" * 1_000_000) < 60 * max(_parse_seconds("x" * 50_000), 1e-3)  # 20x the length


def _png_with_text(path, chunks: dict[str, str], compressed: bool = False) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        if compressed:
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)


def test_ten_megabyte_parameters_chunk_is_refused_with_a_clear_message(tmp_path):
    import pytest

    from studio.errors import StudioError
    from studio.records.pnginfo import read_generation_info

    path = tmp_path / "huge.png"
    _png_with_text(path, {"parameters": "a prompt\nSteps: 20, Seed: 1, Size: 64x64, " + "x" * 10_000_000})
    with pytest.raises(StudioError, match="'parameters' text is larger than the 65,536-byte limit"):
        read_generation_info(path)
    # a zip bomb in a compressed chunk stops at the cap too
    _png_with_text(path, {"parameters": "y" * 50_000_000}, compressed=True)
    with pytest.raises(StudioError, match="'parameters' text is larger than"):
        read_generation_info(path)


def test_oversized_unknown_chunks_are_left_out_and_normal_ones_read(tmp_path):
    from studio.records.pnginfo import read_generation_info
    from studio.records.storage import read_png_text

    path = tmp_path / "other.png"
    _png_with_text(path, {"parameters": A1111_EXAMPLE, "comment": "z" * 200_000, "note": "hello"})
    info = read_generation_info(path)
    assert info["params"]["Steps"] == "28" and info["chunks"]["note"] == "hello"
    assert info["chunks"]["comment"].startswith("<left out: larger than")
    _png_with_text(path, {"parameters": A1111_EXAMPLE, "note": "héllo"}, compressed=True)
    assert read_png_text(path) == {"parameters": A1111_EXAMPLE, "note": "héllo"}


def test_text_is_read_without_decoding_a_decompression_bomb(tmp_path):
    """A PNG whose header claims 100,000 x 100,000 pixels: its text is still read, no pixels are."""
    import struct
    import zlib

    from studio.records.storage import read_png_text

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tEXt", b"parameters\0a cat")
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    assert read_png_text(path) == {"parameters": "a cat"}


def test_pillow_truncated_image_loading_stays_off():
    from PIL import ImageFile

    import studio.records.pnginfo  # noqa: F401
    import studio.records.storage  # noqa: F401

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
