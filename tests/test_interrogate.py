"""/sdapi/v1/interrogate: A1111's CLIP interrogator ranking the category lists with a transformers
CLIP model folder under models/interrogate/ (tiny, random here); 501 naming that folder without one."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from studio.prompting.interrogate import SHIPPED_LISTS, categories
from tests.support.served import api_client
from tests.support.tiny_annotators import BLIP_WORDS, save_blip_folder, save_clip_folder
from tests.test_controlnet_detectors import photo


def png_b64() -> str:
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_shipped_lists_are_a1111s_categories():
    found = {category.name: category for category in categories(SHIPPED_LISTS)}
    assert set(found) == {"artists", "flavors.top3", "mediums", "movements"}
    assert found["flavors.top3"].topn == 3 and found["mediums"].topn == 1


def test_interrogate_ranks_the_lists_with_the_placed_clip_model(settings):
    with api_client(settings) as client:
        missing = client.post("/sdapi/v1/interrogate", json={"image": png_b64(), "model": "clip"})
        assert missing.status_code == 501 and "models/interrogate/" in missing.json()["detail"]
        assert "CLIPModel" in missing.json()["detail"]
        booru = client.post("/sdapi/v1/interrogate", json={"image": png_b64(), "model": "deepdanbooru"})
        assert booru.status_code == 501 and "model-resnet_custom_v3.pt" in booru.json()["detail"]
        assert client.post("/sdapi/v1/interrogate", json={"image": png_b64(), "model": "nope"}).status_code == 422

        save_clip_folder(settings.models_dir / "interrogate" / "clip-tiny")
        answer = client.post("/sdapi/v1/interrogate", json={"image": png_b64(), "model": "clip"})
        assert answer.status_code == 200, answer.text
        words = answer.json()["caption"].split(", ")
        lists = {category.name: category.items for category in categories(SHIPPED_LISTS)}
        assert len(words) == 1 + 3 + 1 + 1  # one artist, three flavours, one medium, one movement (A1111's topN)
        assert words[0] in lists["artists"] and set(words[1:4]) <= set(lists["flavors.top3"])
        assert words[4] in lists["mediums"] and words[5] in lists["movements"]

        (settings.models_dir / "interrogate" / "colours.top2.txt").write_text("red\nblue\ngreen\n")
        own = client.post("/sdapi/v1/interrogate", json={"image": png_b64()}).json()["caption"].split(", ")
        assert len(own) == 2 and set(own) <= {"red", "blue", "green"}  # the user's lists replace the shipped ones
        other = Image.new("RGB", (64, 64), (0, 0, 0))
        buffer = io.BytesIO()
        other.save(buffer, format="PNG")
        assert client.post("/sdapi/v1/interrogate",
                           json={"image": base64.b64encode(buffer.getvalue()).decode()}).status_code == 200


@pytest.mark.parametrize("image", ["not base64!", ""])
def test_a_bad_image_is_the_clients_error_first(settings, image):
    with api_client(settings) as client:
        assert client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"}).status_code == 422


def test_a_blip_folder_adds_a_caption_first(settings):
    save_clip_folder(settings.models_dir / "interrogate" / "clip-tiny")
    save_blip_folder(settings.models_dir / "BLIP" / "blip-tiny")
    with api_client(settings) as client:
        answer = client.post("/sdapi/v1/interrogate", json={"image": png_b64(), "model": "clip"})
        assert answer.status_code == 200, answer.text
        first, *ranked = answer.json()["caption"].split(", ")
        assert len(ranked) == 6 and first.split() and set(first.split()) <= set(BLIP_WORDS)


def test_a_partial_clip_folder_is_refused_naming_it(settings):
    folder = settings.models_dir / "interrogate" / "clip-partial"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "clip"}')  # no weights, no tokenizer
    with api_client(settings) as client:
        answer = client.post("/sdapi/v1/interrogate", json={"image": png_b64(), "model": "clip"})
        assert answer.status_code == 501 and "could not load its models (clip-partial)" in answer.json()["detail"]
