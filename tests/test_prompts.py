"""A1111 prompt syntax: the parsers against A1111's published examples (expected values written by
hand), then what they do to real images on the embedded default model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.prompting.attention import parse_prompt_attention
from studio.prompting.conditioning import prepare_prompts
from studio.prompting.encode import tokenize_line
from studio.prompting.networks import NetworkTag, split_network_tags
from studio.prompting.schedule import prompt_schedule
from studio.request import GenerationRequest, RequestError
from tests.support.a1111_schedule import prompt_schedule as a1111_prompt_schedule

BASE = GenerationRequest(prompt="a red circle on a blue background", negative_prompt="green", sampler_name="Euler",
                         steps=4, cfg_scale=6, width=64, height=64, seed=11)


@pytest.mark.parametrize(("text", "expected"), [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", [
        ("a ", 1.0), ("house", 1.3 * 1.1 * 1.1), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
        (", sun, ", 1.1), ("sky", 1.1 ** 4), (".", 1.1)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("((word))", [("word", 1.1 * 1.1)]),
    ("(a:1.0)", [("a", 1.0)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
])
def test_attention_parser_matches_a1111(text, expected):
    parsed = parse_prompt_attention(text)
    assert [t for t, _ in parsed] == [t for t, _ in expected]
    assert [w for _, w in parsed] == pytest.approx([w for _, w in expected])


@pytest.mark.parametrize(("text", "expected"), [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a:b:0.4]", [(4, "a"), (10, "b")]),
    ("[a::0.5]", [(5, "a"), (10, "")]),
    ("[:b:0.5]", [(5, ""), (10, "b")]),
    ("[a|(b:1.1)]", [(s, "a" if s % 2 else "(b:1.1)") for s in range(1, 11)]),
    ("[fe|]male", [(s, "female" if s % 2 else "male") for s in range(1, 11)]),
    ("[fe|||]male", [(s, "female" if s % 4 == 1 else "male") for s in range(1, 11)]),
])
def test_schedule_parser_matches_a1111(text, expected):
    assert prompt_schedule(text, 10) == expected


SCHEDULE_ALPHABET = st.sampled_from(list("ab :|[]()\\\n") + ["0.5", "1", " 2 ", "1e1", "-1", "x"])


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.lists(SCHEDULE_ALPHABET, max_size=24).map("".join), st.integers(1, 12))
def test_the_linear_scanner_schedules_as_a1111s_grammar(text, steps):
    """The single-pass scanner against A1111's lark grammar (tests/support/a1111_schedule.py) on
    short prompts of the characters that matter: same schedule, or both refuse the same way."""
    def outcome(parse):
        try:
            return parse(text, steps)
        except RequestError as error:
            return type(error)

    assert outcome(prompt_schedule) == outcome(a1111_prompt_schedule)


def test_network_tags_are_split_off_before_encoding():
    text, tags = split_network_tags("a cat <lora:ink style:0.8> in <hypernet:x:1:2>rain")
    assert text == "a cat  in rain"
    assert tags == (NetworkTag("lora", ("ink style", "0.8")), NetworkTag("hypernet", ("x", "1", "2")))
    assert tags[0].text == "<lora:ink style:0.8>"


def long_prompt(tail: str) -> str:
    return "a red circle on a blue background, " * 12 + tail


def test_long_prompts_and_break_make_more_chunks(engine):
    tokenizer = engine.models.current().pipe.tokenizer
    count = len(tokenizer(long_prompt("green"), add_special_tokens=False)["input_ids"])
    assert count > 80
    chunks = tokenize_line(parse_prompt_attention(long_prompt("green")), tokenizer)
    assert len(chunks) == 2 and all(len(c.tokens) == 77 for c in chunks)
    assert chunks[0].tokens[-2] == tokenizer.get_vocab()[",</w>"] or chunks[0].tokens.count(tokenizer.eos_token_id) > 1
    assert len(tokenize_line(parse_prompt_attention("red BREAK blue"), tokenizer)) == 2
    assert len(tokenize_line(parse_prompt_attention("red"), tokenizer)) == 1


def test_our_encoder_equals_diffusers_for_plain_text(engine):
    """The emphasis path with all weights 1 gives diffusers' own embeddings bit for bit."""
    pipe = engine.models.current().pipe
    ours = prepare_prompts(pipe, "a red circle BREAK", "green", 4).conditioning  # trailing BREAK: one chunk
    assert ours is not None
    with torch.inference_mode():
        theirs, negative = pipe.encode_prompt("a red circle", "cpu", 1, True, "green")
    assert torch.equal(ours.positive.at(0).tokens, theirs) and torch.equal(ours.negative.at(0).tokens, negative)
    assert prepare_prompts(pipe, "a (red:1.0) circle", "", 4).conditioning is None  # plain: diffusers' path

    def image(**text):
        with torch.inference_mode():
            return pipe(**text, num_inference_steps=2, width=64, height=64, output_type="np",
                        generator=torch.Generator().manual_seed(1)).images[0]

    kwargs = prepare_prompts(pipe, "a red circle BREAK", "green", 2).pipeline_kwargs(1)
    assert np.array_equal(image(prompt="a red circle", negative_prompt="green"), image(**kwargs))


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0].image).astype(int)


@pytest.fixture(scope="module")
def base_pixels(engine) -> np.ndarray:
    return pixels(engine.run(BASE))


def test_weight_one_is_bit_identical_and_other_weights_change_the_image(engine, base_pixels):
    same = pixels(engine.run(BASE.replace(prompt="a (red:1.0) circle on a blue background")))
    assert np.array_equal(same, base_pixels)
    heavier = pixels(engine.run(BASE.replace(prompt="a (red:1.5) circle on a blue background")))
    assert np.abs(heavier - base_pixels).mean() > 1


def test_the_end_of_a_long_prompt_changes_the_image(engine):
    pipe = engine.models.current().pipe
    with torch.inference_mode():  # diffusers alone truncates at 77 tokens: the ends are lost
        truncated = [pipe.encode_prompt(long_prompt(tail), "cpu", 1, False)[0] for tail in ("green", "yellow")]
    assert torch.equal(*truncated)
    green = pixels(engine.run(BASE.replace(prompt=long_prompt("green"))))
    yellow = pixels(engine.run(BASE.replace(prompt=long_prompt("yellow"))))
    assert not np.array_equal(green, yellow)


def test_alternation_and_editing_change_the_conditioning_per_step(engine, base_pixels):
    alternating = pixels(engine.run(BASE.replace(prompt="a [red|green] circle on a blue background")))
    green = pixels(engine.run(BASE.replace(prompt="a green circle on a blue background")))
    edited = pixels(engine.run(BASE.replace(prompt="a [red:green:0.5] circle on a blue background")))
    for image in (alternating, edited):
        assert np.abs(image - base_pixels).mean() > 1 and np.abs(image - green).mean() > 1


def test_each_schedule_entry_is_encoded_once(engine, monkeypatch):
    import studio.prompting.conditioning as prompts

    calls = []
    real = prompts.encode_chunks
    monkeypatch.setattr(prompts, "encode_chunks", lambda *a, **k: calls.append(1) or real(*a, **k))
    conditioning = prepare_prompts(engine.models.current().pipe, "a [red|green] circle", "blue", 20).conditioning
    assert len(conditioning.positive.entries) == 20
    assert len(calls) == 3  # "a red circle", "a green circle", "blue" (all one chunk: no padding encoded)
    calls.clear()
    prepare_prompts(engine.models.current().pipe, long_prompt("green"), "[blue:red:3]", 20)
    assert len(calls) == 4  # the long prompt, "blue", "red" and the empty chunk that pads the negative


def test_clip_skip_changes_the_image_and_is_bounded(engine, base_pixels):
    skipped = pixels(engine.run(BASE.replace(clip_skip=2)))
    assert np.abs(skipped - base_pixels).mean() > 1
    with pytest.raises(RequestError, match="clip_skip"):
        BASE.replace(clip_skip=13).validate()
    with pytest.raises(RequestError, match="at most 3"):  # the default model's text encoder has 3 layers
        engine.run(BASE.replace(clip_skip=4))


def test_infotext_round_trip_and_reproduce_are_bit_identical(engine, shared_settings):
    from PIL import Image

    from studio.records.infotext import params_to_request_fields, parse_infotext
    from studio.service.container import build_services
    from studio.service.extensions.manager import ExtensionManager

    studio = build_services(shared_settings, engine=engine, extensions=ExtensionManager(shared_settings))
    request = BASE.replace(prompt="a ((red)) [circle:square:0.5] on a [blue|green] background BREAK sky",
                           negative_prompt="(green:1.3)", clip_skip=2, steps=3)
    saved = studio.generation.submit(request).images[0]
    assert "Clip skip: 2" in saved.infotext and saved.infotext.startswith(request.prompt + "\n")
    fields = params_to_request_fields(parse_infotext(saved.infotext))
    assert (fields["prompt"], fields["negative_prompt"], fields["clip_skip"]) == (
        request.prompt, request.negative_prompt, 2)
    again = engine.run(GenerationRequest(**{**fields, "sampler_name": "Euler"}))  # from the text alone
    assert np.array_equal(np.asarray(again.images[0].image), np.asarray(Image.open(saved.path).convert("RGB")))
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(np.asarray(done.image.image), np.asarray(Image.open(saved.path).convert("RGB")))
    assert done.image.infotext == saved.infotext
    assert "Clip skip" not in studio.generation.submit(BASE.replace(steps=1), save=False).images[0].infotext


# -- composable diffusion (AND) ---------------------------------------------------------------

A1111_RE_WEIGHT = __import__("re").compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


@settings(max_examples=300, deadline=None, derandomize=True)  # every line-to-line step of split_and by example 19 (traced); 2000 added none
@given(st.lists(st.sampled_from(list("ab :.+-\n") + ["1", "0.5", " :2", ":.5", "AND"]), max_size=16).map("".join))
def test_and_subprompts_and_weights_read_as_a1111_reads_them(text):
    """split_and against A1111's get_multicond_prompt_list (its re_AND and re_weight) on short prompts."""
    import re

    from studio.prompting.composable import split_and

    expected = []
    for part in re.split(r"\bAND\b", text):
        found, weight = A1111_RE_WEIGHT.search(part).groups()
        expected.append((found, float(weight) if weight is not None else 1.0))
    assert split_and(text) == expected


def test_and_combines_subprompts_as_a1111_does(engine, base_pixels):
    """A1111: uncond + cfg * sum_i w_i (cond_i - uncond). A part of weight 0 adds nothing (bit for bit),
    a lone weight scales the pull (`x :0.5` at CFG 6 is x at CFG 3), two parts give a new image."""
    second = "a green square on a yellow background"
    zero = pixels(engine.run(BASE.replace(prompt=f"{BASE.prompt} :1 AND {second} :0")))
    assert np.array_equal(zero, base_pixels)
    half = pixels(engine.run(BASE.replace(prompt=f"{BASE.prompt} :0.5")))
    lower_cfg = pixels(engine.run(BASE.replace(cfg_scale=BASE.cfg_scale / 2)))  # the same sum, rounded differently
    assert np.abs(half - lower_cfg).max() <= 2 and np.abs(half - base_pixels).mean() > 1
    both = pixels(engine.run(BASE.replace(prompt=f"{BASE.prompt} AND {second}")))
    alone = pixels(engine.run(BASE.replace(prompt=second)))
    assert np.abs(both - base_pixels).mean() > 1 and np.abs(both - alone).mean() > 1
    scheduled = pixels(engine.run(BASE.replace(prompt=f"{BASE.prompt} AND [{second}:a cat:0.5]")))
    assert np.abs(scheduled - both).mean() > 0.1  # a part's own prompt editing applies


def test_and_has_a_limit_and_refuses_what_it_cannot_combine(engine):
    from studio.prompting.limits import MAX_AND_PARTS, check_prompts

    with pytest.raises(RequestError, match=f"at most {MAX_AND_PARTS} subprompts joined by AND"):
        check_prompts(" AND ".join(["a cat"] * (MAX_AND_PARTS + 1)), "", 20)
    from PIL import Image

    from studio.request import ControlUnit

    unit = ControlUnit(control_type="canny", image=Image.new("RGB", (64, 64)), module="none")
    with pytest.raises(RequestError, match="AND work without the SDXL refiner and ControlNet"):
        engine.run(BASE.replace(prompt="a AND b", controlnet_units=(unit,)))
