"""LoRA / LyCORIS, textual inversion and VAE choice on the embedded default model (CPU, offline).

The network files are tiny random ones written here for the default model's layers: kohya/A1111
keys, diffusers/peft keys, LoCon, LoHa (refused), an SDXL LoRA (refused), an A1111 embedding,
a second VAE as a diffusers folder and as an A1111 single file.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.checkpoints.manager import ModelManager
from studio.generation.engine import Engine
from studio.networks.tags import NetworkTag, extract_network_tags
from studio.records import infotext
from studio.records.reproduce import read_recipe, recipe_warnings
from studio.request import GenerationRequest, RequestError
from studio.service.container import Services, build_services
from studio.service.extensions.manager import ExtensionManager
from studio.settings import Settings
from tests.support import network_files as nf

BASE = GenerationRequest(prompt="a red circle on a blue background", negative_prompt="green", sampler_name="Euler",
                         steps=3, cfg_scale=6, width=64, height=64, seed=77)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Services, np.ndarray]:
    """A studio with its own models/ folder of network files, and the image of BASE made before
    any network was ever loaded (the 'fresh start' every later run without networks must equal)."""
    root = tmp_path_factory.mktemp("networks")
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "ext",
                        cache_dir=root / "cache")
    models = ModelManager(settings)
    pipe = models.current().pipe
    lora_dir, emb_dir, vae_dir = (settings.models_dir / d for d in ("Lora", "embeddings", "VAE"))
    for folder in (lora_dir, emb_dir, vae_dir):
        folder.mkdir(parents=True)
    nf.kohya_lora(pipe, lora_dir / "kohya.safetensors", metadata={"ss_output_name": "kohya_alias"})
    nf.kohya_lora(pipe, lora_dir / "locon.safetensors", seed=9, conv=True)
    nf.peft_lora(pipe, lora_dir / "peft.safetensors")
    nf.loha_lora(pipe, lora_dir / "loha.safetensors", scale=0.6)
    nf.lokr_lora(pipe, lora_dir / "lokr.safetensors")
    nf.sdxl_lora(lora_dir / "sdxl.safetensors")
    (lora_dir / "pickled.pt").write_bytes((lora_dir / "kohya.safetensors").read_bytes())
    nf.embedding(pipe, emb_dir / "shinystyle.safetensors")
    nf.embedding(pipe, emb_dir / "oldstyle.pt", vectors=1, seed=8)
    nf.vae_folder(pipe, vae_dir / "folder-vae")
    nf.vae_single_file(pipe, vae_dir / "single-vae.safetensors")
    engine = Engine(models)
    studio = build_services(settings, engine=engine, extensions=ExtensionManager(settings))
    fresh = pixels(studio.generation.submit(BASE, save=False).images[0].image)
    return studio, fresh


def run(studio: Services, **changes) -> np.ndarray:
    return pixels(studio.generation.submit(BASE.replace(**changes), save=False).images[0].image)


def addnet_hash(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()[:12]


# -- tags -------------------------------------------------------------------------------------

def test_network_tags_follow_a1111():
    clean, tags = extract_network_tags("a cat <lora:foo:0.8>, <lora:bar:1:0.5> <lyco:baz:unet=0.3:te=2> done")
    assert clean == "a cat ,   done"
    assert tags == [
        NetworkTag("lora", "foo", 0.8, 0.8, "<lora:foo:0.8>"),
        NetworkTag("lora", "bar", 1.0, 0.5, "<lora:bar:1:0.5>"),  # A1111: te first, then unet
        NetworkTag("lora", "baz", 2.0, 0.3, "<lyco:baz:unet=0.3:te=2>"),
    ]
    assert extract_network_tags("<lora:x>")[1][0].te_weight == 1.0
    with pytest.raises(RequestError, match="not a number"):
        extract_network_tags("<lora:x:heavy>")


def test_network_keys_go_where_a1111_writes_them_and_parse_back():
    params = {"Steps": 3, "Sampler": "Euler", "Model hash": "abc", "Model": "m", "Denoising strength": "0.5"}
    networks = {"VAE hash": "0123456789", "VAE": "vae.safetensors", "Lora hashes": "a: 1, b: 2", "TI hashes": "t: 3"}
    merged = infotext.with_networks(params, networks)
    assert list(merged) == ["Steps", "Sampler", "Model hash", "Model", "VAE hash", "VAE", "Denoising strength",
                            "Lora hashes", "TI hashes"]
    text = infotext.write_infotext("p <lora:a:1>", "", merged)
    assert 'Lora hashes: "a: 1, b: 2", TI hashes: "t: 3"' in text
    parsed = infotext.parse_infotext(text)
    assert parsed["Lora hashes"] == "a: 1, b: 2" and parsed["VAE"] == "vae.safetensors"
    assert infotext.params_to_request_fields(parsed)["vae"] == "vae.safetensors"
    without = infotext.parse_infotext(infotext.write_infotext("p", "", params))
    assert infotext.params_to_request_fields(without)["vae"] == "Automatic"  # no VAE key: the model's own


def test_clicking_a_card_toggles_its_tag_or_name_in_the_prompt():
    from studio.ui.networks import toggle

    assert toggle("", "<lora:a:1>") == "<lora:a:1>"
    assert toggle("a cat", "<lora:a:1>") == "a cat <lora:a:1>"
    assert toggle("a cat <lora:a:0.4> more", "<lora:a:1>") == "a cat more"
    assert toggle("a cat <lora:ab:1>", "<lora:a:1>") == "a cat <lora:ab:1> <lora:a:1>"
    assert toggle("a cat, shinystyle", "shinystyle") == "a cat"
    assert toggle("a shinystyles cat", "shinystyle") == "a shinystyles cat shinystyle"


# -- LoRA -------------------------------------------------------------------------------------

def test_a_kohya_lora_changes_the_image_and_is_recorded_with_a1111s_hash(setup):
    studio, fresh = setup
    job = studio.generation.submit(BASE.replace(prompt=BASE.prompt + " <lora:kohya:1>"), save=False)
    assert not np.array_equal(pixels(job.images[0].image), fresh)
    path = studio.settings.models_dir / "Lora" / "kohya.safetensors"
    text = job.images[0].infotext
    assert f'Lora hashes: "kohya: {addnet_hash(path)}"' in text
    assert text.startswith(BASE.prompt + " <lora:kohya:1>\n")  # the prompt keeps its tags
    assert job.images[0].recipe["networks"]["loras"] == {"kohya": addnet_hash(path)}


def test_an_sd1_lora_with_kohyas_te1_names_loads_as_its_te_twin(setup):
    """diffusers' convert_state_dict_to_kohya names SD 1.x's text encoder `lora_te1_`: A1111 loads
    it on SD 1.x (it was refused as SDXL); it gives the pixels of the same file named `lora_te_`."""
    from safetensors.torch import load_file, save_file

    studio, fresh = setup
    lora_dir = studio.settings.models_dir / "Lora"
    state = load_file(lora_dir / "kohya.safetensors")
    save_file({k.replace("lora_te_", "lora_te1_"): v for k, v in state.items()}, lora_dir / "kohya_te1.safetensors")
    te1 = run(studio, prompt=BASE.prompt + " <lora:kohya_te1:1>")
    assert np.array_equal(te1, run(studio, prompt=BASE.prompt + " <lora:kohya:1>"))
    assert not np.array_equal(te1, fresh)


@pytest.mark.parametrize("name", ["loha", "lokr"])
def test_lycoris_loha_and_lokr_change_each_layer_by_their_formula(setup, name):
    """LoHa: (w1a·w1b) ⊙ (w2a·w2b) · alpha/rank; LoKr: w1 ⊗ (w2a·w2b) · alpha/rank — added to the layer
    while the tag is in the prompt, gone after (the weights are never touched)."""
    import torch
    from safetensors.torch import load_file

    from studio.networks import lycoris

    studio, fresh = setup
    path = studio.settings.models_dir / "Lora" / f"{name}.safetensors"
    with_it = run(studio, prompt=f"{BASE.prompt} <lora:{name}:1>")
    assert np.abs(with_it.astype(float) - fresh).mean() > 0.5
    assert np.array_equal(run(studio), fresh)  # without the tag: exactly a fresh start
    assert np.array_equal(run(studio, prompt=f"{BASE.prompt} <lora:{name}:0>"), fresh)

    state = load_file(path)
    stem = next(key.split(".")[0] for key in state if "attn2_to_q" in key and key.startswith("lora_unet_"))
    f = {key.split(".", 1)[1]: value.double() for key, value in state.items() if key.startswith(stem + ".")}
    if name == "loha":
        delta = (f["hada_w1_a"] @ f["hada_w1_b"]) * (f["hada_w2_a"] @ f["hada_w2_b"]) * f["alpha"] / f["hada_w1_b"].shape[0]
    else:
        delta = torch.kron(f["lokr_w1"], f["lokr_w2_a"] @ f["lokr_w2_b"]) * f["alpha"] / f["lokr_w2_b"].shape[0]
    pipe = studio.models.current().pipe
    module = dict(pipe.unet.named_modules())[stem.removeprefix("lora_unet_").replace("_", ".").replace(
        "down.blocks", "down_blocks").replace("transformer.blocks", "transformer_blocks").replace("to.q", "to_q")]
    x = torch.randn(2, module.in_features, generator=torch.Generator().manual_seed(0)).to(module.weight.dtype)
    base = module(x)
    network = studio.models.current().networks.lycoris
    (loaded,) = [n for n in network.values() if n.name == f"{name}.safetensors"]
    lycoris.attach([(loaded, 1.0, 0.7)])
    try:
        added = (module(x) - base).double()
    finally:
        lycoris.detach(loaded)
    expected = 0.7 * (x.double() @ delta.T)
    assert torch.allclose(added, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))


def test_a_run_without_the_tag_after_one_with_it_equals_a_fresh_start(setup):
    studio, fresh = setup
    with_lora = run(studio, prompt=BASE.prompt + " <lora:kohya:1> <lora:peft:0.7>")
    assert not np.array_equal(with_lora, fresh)
    assert np.array_equal(run(studio), fresh)
    assert np.array_equal(run(studio, prompt=BASE.prompt + " <lora:kohya:0>"), fresh)  # weight 0 = no LoRA


def test_lora_formats_weights_and_several_at_once(setup):
    studio, fresh = setup
    images = {tag: run(studio, prompt=f"{BASE.prompt} {tag}") for tag in (
        "<lora:kohya:1>", "<lora:kohya_alias:1>", "<lora:peft:1>", "<lora:locon:1>", "<lora:kohya:1:0>",
        "<lora:kohya:1> <lora:peft:1>")}
    assert np.array_equal(images["<lora:kohya:1>"], images["<lora:kohya_alias:1>"])  # A1111's alias (ss_output_name)
    distinct = [v for k, v in images.items() if k != "<lora:kohya_alias:1>"] + [fresh]
    for i, a in enumerate(distinct):
        for b in distinct[i + 1:]:
            assert not np.array_equal(a, b)
    # Cached: each file is one adapter, loaded once for the model.
    loaded = [Path(stamp.split("|")[0]).stem for stamp in studio.models.current().networks.loras]
    assert sorted(name for name in loaded if name in ("kohya", "peft", "locon")) == ["kohya", "locon", "peft"]


@pytest.mark.parametrize(("tag", "message"), [
    ("<lora:sdxl:1>", r"sdxl\.safetensors is for SDXL"),
    ("<lora:missing:1>", r"LoRA 'missing' not found"),
    ("<lora:pickled:1>", r"pickled\.pt is a pickle file.*--allow-pickle"),
    ("<hypernet:kohya:1>", r"hypernetworks are listed .* but cannot be applied"),
])
def test_loras_that_cannot_be_used_are_clear_errors(setup, tag, message):
    studio, fresh = setup
    with pytest.raises(RequestError, match=message):
        studio.generation.submit(BASE.replace(prompt=f"{BASE.prompt} {tag}"), save=False)
    assert np.array_equal(run(studio), fresh)  # and nothing is left behind


@pytest.mark.parametrize(("layers", "message"), [
    # An SD 1.x LoRA (768-wide text conditioning) on this model: refused before loading.
    ({"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k": (96, 768)},
     r"wide\.safetensors was made for a model with 768-wide text conditioning; studio-default-64px uses 128"),
    # Text-encoder layers of another width: diffusers refuses, we say what it means.
    ({"lora_te_text_model_encoder_layers_0_self_attn_q_proj": (768, 768),
      "lora_te_text_model_encoder_layers_0_self_attn_out_proj": (768, 768)},
     r"wide\.safetensors does not fit studio-default-64px: its layer shapes do not match"),
])
def test_a_lora_of_another_shape_is_a_clear_error(setup, layers, message):
    from safetensors.numpy import save_file

    studio, fresh = setup
    pipe = studio.models.current().pipe
    path = studio.settings.models_dir / "Lora" / "wide.safetensors"
    state = {}
    for name, (out_features, in_features) in layers.items():
        state[f"{name}.lora_down.weight"] = np.zeros((4, in_features), np.float32)
        state[f"{name}.lora_up.weight"] = np.zeros((out_features, 4), np.float32)
    save_file(state, str(path))
    try:
        with pytest.raises(RequestError, match=message):
            studio.generation.submit(BASE.replace(prompt=f"{BASE.prompt} <lora:wide:1>"), save=False)
    finally:
        path.unlink()
    assert pipe is studio.models.current().pipe and np.array_equal(run(studio), fresh)


def test_a_lora_image_reproduces_bit_identically_and_warns_when_the_file_changed(setup):
    studio, _ = setup
    job = studio.generation.submit(BASE.replace(prompt=BASE.prompt + " <lora:kohya:0.8> <lora:locon:0.5:1>"))
    saved = job.images[0]
    assert recipe_warnings(read_recipe(saved.path), studio.generation.engine.models) == []
    studio.generation.submit(BASE)  # a run in between without them
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path)))
    assert done.image.infotext == saved.infotext
    parsed = infotext.parse_infotext(saved.infotext)
    assert re.fullmatch(r"kohya: [0-9a-f]{12}, locon: [0-9a-f]{12}", parsed["Lora hashes"])
    path = studio.settings.models_dir / "Lora" / "locon.safetensors"
    original = path.read_bytes()
    try:
        nf.kohya_lora(studio.models.current().pipe, path, seed=99, conv=False)
        warnings = recipe_warnings(read_recipe(saved.path), studio.generation.engine.models)
        assert len(warnings) == 1 and warnings[0].startswith("LoRA locon has hash ")
    finally:
        path.write_bytes(original)


# -- textual inversion ------------------------------------------------------------------------

def test_an_embedding_named_in_the_prompt_is_used_and_recorded(setup):
    studio, fresh = setup
    job = studio.generation.submit(BASE.replace(prompt="shinystyle, " + BASE.prompt))
    saved = job.images[0]
    plain = run(studio, prompt="shinystyle, " + BASE.prompt)  # cached: the same again
    assert np.array_equal(pixels(saved.image), plain)
    assert not np.array_equal(plain, run(studio, prompt="shiny, " + BASE.prompt))
    path = studio.settings.models_dir / "embeddings" / "shinystyle.safetensors"
    assert f'TI hashes: "shinystyle: {hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"' in saved.infotext
    assert np.array_equal(run(studio), fresh)  # loaded, but a prompt without it is as before
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path))) and done.warnings == []
    negative = studio.generation.submit(BASE.replace(negative_prompt="shinystyle"), save=False).images[0]
    assert "TI hashes" in negative.infotext  # embeddings work in the negative prompt too (A1111)


def test_a_pickled_embedding_needs_allow_pickle_then_loads_weights_only(setup):
    studio, fresh = setup
    request = BASE.replace(prompt="oldstyle " + BASE.prompt)
    with pytest.raises(RequestError, match=r"oldstyle\.pt is a pickle file"):
        studio.generation.submit(request, save=False)
    networks = studio.generation.engine.networks
    networks.settings = networks.settings.replace(allow_pickle=True)
    try:
        job = studio.generation.submit(request, save=False)
    finally:
        networks.settings = networks.settings.replace(allow_pickle=False)
    assert "TI hashes: \"oldstyle: " in job.images[0].infotext
    assert not np.array_equal(pixels(job.images[0].image), fresh)


# -- VAE --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["folder-vae", "single-vae.safetensors"])
def test_a_vae_from_models_vae_decodes_and_automatic_restores_the_models_own(setup, name):
    studio, fresh = setup
    job = studio.generation.submit(BASE.replace(vae=name))
    saved = job.images[0]
    assert job.request.vae == name
    assert not np.array_equal(pixels(saved.image), fresh)
    parsed = infotext.parse_infotext(saved.infotext)
    assert parsed["VAE"] == name and re.fullmatch(r"[0-9a-f]{10}", parsed["VAE hash"])
    assert infotext.params_to_request_fields(parsed)["vae"] == name
    model = studio.models.current()
    assert all(p.vae is model.pipe.vae for p in model.mode_pipelines.values())  # every mode pipeline
    assert np.array_equal(run(studio, vae="Automatic"), fresh)
    assert all(p.vae is model.networks.original_vae for p in [model.pipe, *model.mode_pipelines.values()])
    done = studio.generation.reproduce_image(saved.path)
    assert np.array_equal(pixels(done.image.image), pixels(Image.open(saved.path))) and done.warnings == []
    assert np.array_equal(run(studio), fresh)  # a request without vae: the selected one (Automatic)


def test_the_selected_vae_applies_to_requests_without_one_and_bad_names_are_errors(setup):
    studio, fresh = setup
    networks = studio.generation.engine.networks
    assert networks.vae_names() == ["Automatic", "folder-vae", "single-vae.safetensors"]
    with pytest.raises(RequestError, match="VAE 'nope' not found"):
        networks.select_vae("nope")
    networks.select_vae("folder-vae")
    try:
        job = studio.generation.submit(BASE, save=False)
        assert job.request.vae == "folder-vae" and "VAE: folder-vae" in job.images[0].infotext
        img2img = studio.generation.submit(BASE.replace(init_image=Image.fromarray(fresh), denoising_strength=0.5), save=False)
        assert img2img.request.vae == "folder-vae"
    finally:
        networks.select_vae("Automatic")
    assert np.array_equal(run(studio), fresh)


# -- HTTP (A1111 routes and shapes) -----------------------------------------------------------

@pytest.fixture(scope="module")
def client(setup):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from studio.web.auth import access_policy
    from studio.web.mount import build_api

    studio, _ = setup
    app = FastAPI()
    app.include_router(build_api(studio, access_policy(studio.settings)))
    with TestClient(app) as local:
        yield local


def test_network_listings_have_a1111s_shapes(setup, client):
    studio, _ = setup
    loras = {item["name"]: item for item in client.get("/sdapi/v1/loras").json()}
    assert set(loras) >= {"kohya", "locon", "peft", "loha", "sdxl", "pickled"}
    assert loras["kohya"]["alias"] == "kohya_alias" and loras["kohya"]["metadata"] == {"ss_output_name": "kohya_alias"}
    assert loras["peft"]["path"] == str(studio.settings.models_dir / "Lora" / "peft.safetensors")
    embeddings = client.get("/sdapi/v1/embeddings").json()
    assert embeddings["loaded"]["shinystyle"] == {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                                  "shape": 128, "vectors": 2}
    assert "oldstyle" in embeddings["skipped"]  # a pickle, and this studio runs without --allow-pickle
    assert client.get("/sdapi/v1/sd-vae").json() == [
        {"model_name": "folder-vae", "filename": str(studio.settings.models_dir / "VAE" / "folder-vae")},
        {"model_name": "single-vae.safetensors",
         "filename": str(studio.settings.models_dir / "VAE" / "single-vae.safetensors")}]
    for route in ("refresh-loras", "refresh-embeddings", "refresh-vae"):
        assert client.post(f"/sdapi/v1/{route}").status_code == 200


def test_txt2img_over_http_applies_lora_tags_and_sd_vae(setup, client):
    body = {"prompt": BASE.prompt + " <lora:kohya:0.6>", "steps": 2, "width": 64, "height": 64, "seed": 5,
            "override_settings": {"sd_vae": "folder-vae"}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])["infotexts"][0]
    assert 'Lora hashes: "kohya: ' in info and "VAE: folder-vae" in info
    missing = client.post("/sdapi/v1/txt2img", json={**body, "prompt": "<lora:nope:1>"})
    assert missing.status_code == 422 and "LoRA 'nope' not found" in missing.text
    assert client.post("/sdapi/v1/options", json={"sd_vae": "nope"}).status_code == 422
    assert client.post("/sdapi/v1/options", json={"sd_vae": "single-vae.safetensors"}).status_code == 200
    try:
        assert client.get("/sdapi/v1/options").json()["sd_vae"] == "single-vae.safetensors"
    finally:
        client.post("/sdapi/v1/options", json={"sd_vae": "Automatic"})
    assert client.get("/sdapi/v1/options").json()["sd_vae"] == "Automatic"


def test_the_cli_lists_networks(setup, capsys):
    from studio.cli import main as cli

    studio, _ = setup
    models = str(studio.settings.models_dir)
    assert cli.main(["networks", "--models-dir", models]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "lora\tkohya\t" + str(studio.settings.models_dir / "Lora" / "kohya.safetensors") in listed
    assert any(line.startswith("embedding\tshinystyle\t") for line in listed)
    assert any(line.startswith("vae\tfolder-vae\t") for line in listed)


def test_a_loha_for_layers_this_model_lacks_is_a_clear_error(setup):
    import torch
    from safetensors.torch import save_file

    studio, fresh = setup
    path = studio.settings.models_dir / "Lora" / "otherloha.safetensors"
    stem = "lora_unet_input_blocks_99_1_transformer_blocks_0_attn1_to_q"
    save_file({f"{stem}.hada_w1_a": torch.ones(8, 2), f"{stem}.hada_w1_b": torch.ones(2, 8),
               f"{stem}.hada_w2_a": torch.ones(8, 2), f"{stem}.hada_w2_b": torch.ones(2, 8)}, str(path))
    with pytest.raises(RequestError, match=r"otherloha\.safetensors does not fit studio-default-64px"):
        studio.generation.submit(BASE.replace(prompt=f"{BASE.prompt} <lora:otherloha:1>"), save=False)
    assert np.array_equal(run(studio), fresh)
