"""Prompt cost bombs (reliability issue II, items 1, 6 and 17): each hostile prompt the attack report
measured answers with a 422 naming the limit, or an image, in well under a second of server CPU.

Before the single-pass scanner, `"(:" * 400` cost 24 s of CPU and 680 MB inside the engine lock."""
from __future__ import annotations

import time

import pytest

from studio.prompting import limits
from tests.adversarial.conftest import Tally, assert_handled

API = "/sdapi/v1"
FAST = {"steps": 1, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler"}

# name -> (prompt, words the 422 must contain, or None when an image is the right answer)
BOMBS = {
    "'(:' x 400": ("(:" * 400, ["32 deep"]),
    "'(:' x 500": ("(:" * 500, ["32 deep"]),
    "'[a:b:0.5]' x 400": ("[a:b:0.5]" * 400, [f"at most {limits.MAX_EDITS} prompt edits"]),
    "20 KB of nested parentheses": ("(" * 9_999 + "x" + ")" * 9_999, ["32 deep"]),
    "250-deep parentheses": ("(" * 250 + "x" + ")" * 250, ["32 deep"]),
    "'BREAK ' x 1000": ("BREAK " * 1000, [f"at most {limits.MAX_CHUNKS} chunks"]),
    "'BREAK ' x 3300": ("BREAK " * 3300, [f"at most {limits.MAX_CHUNKS} chunks"]),
    "[a:b:1e999]": ("[a:b:1e999]", ["finite"]),
    "[a:b:-1e999]": ("[a:b:-1e999]", ["finite"]),
    "coprime alternations (40 texts in 40 steps)": ("[a|b] [c|d|e] [f|g|h|i|j] [k|l|m|n|o|p|q]", ["different texts"]),
    "17 alternations": ("[a|b]" * 17, [f"at most {limits.MAX_ALTERNATIONS} alternations"]),
    "20,000 characters of escapes": ("\\(" * 10_000, [f"at most {limits.MAX_CHUNKS} chunks"]),
    "6,600 shallow brackets": ("(a)" * 6_600, [f"at most {limits.MAX_CHUNKS} chunks"]),
    "1,000 escapes (14 chunks)": ("\\(" * 1_000, None),
    "600 shallow brackets, an edit and an alternation": ("(a)" * 600 + "[b:c:0.5] [d|e]", None),
    "a long prompt over the chunk limit": ("red circle, " * 1_200, [f"at most {limits.MAX_CHUNKS} chunks"]),
}


def _cpu_of(call):
    """Process CPU seconds a call costs (the in-process server's threads included)."""
    started = time.process_time()
    result = call()
    return result, time.process_time() - started


@pytest.mark.parametrize("name", list(BOMBS))
@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_prompt_bombs_are_cheap_and_refused_by_name(api, name, field):
    text, words = BOMBS[name]
    steps = 40 if "40 steps" in name else 1
    body = {"prompt": "a red circle", **FAST, "steps": steps, field: text}
    response, cpu = _cpu_of(lambda: api.post(f"{API}/txt2img", json=body))
    assert_handled(response, Tally("prompt cost bombs"))
    assert cpu < 1.0, f"{name} cost {cpu:.2f} s of CPU"
    if words is None:
        assert response.status_code == 200, response.text[:300]
        assert len(response.json()["images"]) == 1
    else:
        assert response.status_code == 422, response.text[:300]
        detail = response.json()["detail"]
        assert field in detail and all(word in detail for word in words), detail


def test_progress_answers_while_a_bomb_is_refused(api):
    """The refusal happens at admission: the engine stays free, /progress says it is idle."""
    response = api.post(f"{API}/txt2img", json={**FAST, "prompt": "(:" * 500})
    assert response.status_code == 422
    progress = api.get(f"{API}/progress")
    assert progress.status_code == 200 and progress.json()["state"]["job_count"] == 0


def test_reproducing_a_png_with_a_bomb_prompt_is_refused_before_work(adversary_studio, tmp_path):
    """A PNG's recipe is hostile input too: its prompts pass the same limits before anything runs."""
    from PIL import Image

    from studio.records import storage
    from studio.request import GenerationRequest, RequestError

    request = GenerationRequest(prompt="[a:b:0.5]" * 400, steps=1, width=64, height=64, seed=1,
                                model=adversary_studio.models.current().entry.title)
    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path, pnginfo=storage.png_info("bomb", {"request": request.to_dict()}))
    started = time.process_time()
    with pytest.raises(RequestError, match="prompt edits"):
        adversary_studio.generation.reproduce_image(path)
    assert time.process_time() - started < 1.0
