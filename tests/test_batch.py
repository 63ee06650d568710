"""Folder batches: img2img (with a mask folder) and Extras, and who may name which server folder."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from studio.request import GenerationRequest
from studio.service.container import Services, build_services
from studio.service.folders import FolderError, FolderPolicy
from studio.settings import Settings


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Services:
    root = tmp_path_factory.mktemp("batch")
    return build_services(Settings(models_dir=root / "models", outputs_dir=root / "outputs",
                                  extensions_dir=root / "extensions", cache_dir=root / "cache",
                                  styles_file=root / "styles.csv"))


def pictures(folder: Path, names: dict[str, str], size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, colour in names.items():
        paths.append(folder / name)
        Image.new("RGB", (size, size), colour).save(paths[-1])
    return paths


def test_img2img_batch_runs_every_image_of_the_folder(studio, tmp_path):
    pictures(tmp_path / "in", {"a.png": "red", "b.jpg": "blue"})
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    request = GenerationRequest(prompt="a circle", steps=2, seed=5, denoising_strength=0.5, sampler_name="Euler")
    result = studio.generation.img2img_batch(request, tmp_path / "in", tmp_path / "out")
    assert len(result.paths) == 2 and all(path.parent == tmp_path / "out" for path in result.paths)
    for path in result.paths:
        with Image.open(path) as image:
            assert image.size == (64, 64) and "Denoising strength: 0.5" in image.text["parameters"]
    assert not result.notes


def test_img2img_batch_with_a_mask_folder_inpaints_and_skips_images_without_a_mask(studio, tmp_path):
    pictures(tmp_path / "in", {"a.png": "red", "b.png": "blue"})
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    (tmp_path / "masks").mkdir()
    mask.save(tmp_path / "masks" / "a.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "masks" / "other.png")
    request = GenerationRequest(prompt="a circle", steps=2, seed=5, sampler_name="Euler")
    result = studio.generation.img2img_batch(request, tmp_path / "in", tmp_path / "out", tmp_path / "masks")
    assert len(result.paths) == 1 and "b.png: no mask" in result.notes[0]
    assert (result.paths[0].with_name(result.paths[0].stem + "-mask.png")).exists()  # inpaint keeps its mask
    with Image.open(result.paths[0]) as image:
        assert "Mask blur" in image.text["parameters"]


def test_extras_folder_upscales_every_image_into_the_output_folder(studio, tmp_path):
    pictures(tmp_path / "in", {"a.png": "red", "b.png": "green"}, size=32)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    result = studio.extras.folder({"upscaler_1": "Lanczos", "upscaling_resize": 2}, tmp_path / "in",
                               tmp_path / "out")
    assert [Image.open(path).size for path in result.paths] == [(64, 64), (64, 64)]
    assert all(path.parent == tmp_path / "out" for path in result.paths)
    assert "broken.png: not a readable image" in result.notes[0]
    assert "Postprocess upscaler: Lanczos" in Image.open(result.paths[0]).text["parameters"]


def test_a_missing_or_empty_input_folder_is_a_clear_error(studio, tmp_path):
    request = GenerationRequest(prompt="x", steps=1)
    with pytest.raises(FolderError, match="input_dir: .* does not exist"):
        studio.generation.img2img_batch(request, tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match="input_dir: no images"):
        studio.generation.img2img_batch(request, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(FolderError, match="input_dir: give a folder"):
        studio.extras.folder({}, "  ")


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    outputs, outside, shared = tmp_path / "outputs", tmp_path / "private", tmp_path / "shared"
    pictures(outputs / "mine", {"a.png": "red"})
    pictures(outside, {"secret.png": "black"})
    pictures(shared, {"s.png": "white"})
    (outputs / "escape").symlink_to(outside, target_is_directory=True)
    pictures(outputs / "linked", {})
    (outputs / "linked" / "secret.png").symlink_to(outside / "secret.png")
    return {"outputs": outputs, "outside": outside, "shared": shared, "root": tmp_path}


def policy(layout: dict[str, Path], **settings: object) -> FolderPolicy:
    return FolderPolicy.from_settings(Settings(outputs_dir=layout["outputs"], **settings))


def test_a_public_server_refuses_folders_outside_outputs_and_escapes(layout):
    public = policy(layout, host="0.0.0.0", batch_roots=(layout["shared"],))
    assert public.restricted
    assert public.input_folder("mine", "input_dir") == (layout["outputs"] / "mine").resolve()
    assert public.input_folder(layout["outputs"] / "mine", "input_dir").name == "mine"
    assert public.input_folder(layout["shared"], "input_dir") == layout["shared"].resolve()  # a --batch-root
    for bad in ("../private", "mine/../../private", str(layout["outside"]), "escape", "/etc"):
        with pytest.raises(FolderError, match="input_dir: .* is outside outputs/ or a --batch-root folder"):
            public.input_folder(bad, "input_dir")
    for bad in (layout["shared"], "../new", "escape/new"):  # writing: outputs/ only
        with pytest.raises(FolderError, match=r"output_dir: .* is outside outputs/;"):
            public.output_folder(bad, "output_dir")
    assert not (layout["root"] / "new").exists() and not (layout["outside"] / "new").exists()
    linked = public.input_folder("linked", "input_dir")
    with pytest.raises(FolderError, match="secret.png"):  # a file that links out of outputs/
        public.images(linked, "input_dir")
    assert public.output_folder("made/here", "output_dir").is_dir()


@pytest.mark.parametrize("settings", [{"share": True}, {"hosted_demo": True}, {"host": "192.168.1.5"}])
def test_every_shared_bind_is_restricted(layout, settings):
    with pytest.raises(FolderError, match="outside outputs/"):
        policy(layout, **settings).input_folder(layout["outside"], "input_dir")


def test_the_local_operator_may_name_any_folder(layout):
    local = policy(layout)
    assert not local.restricted
    assert local.input_folder(layout["outside"], "input_dir") == layout["outside"].resolve()
    assert [p.name for p in local.images(local.input_folder("linked", "input_dir"), "input_dir")] == ["secret.png"]
    assert local.output_folder(layout["root"] / "anywhere", "output_dir").is_dir()


def test_batch_root_flags_become_settings(tmp_path, monkeypatch):
    from studio.cli.main import build_parser
    from studio.cli.settings_flags import settings_from_args

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["serve", "--listen", "--batch-root", "photos", "--batch-root", "/srv/in"])
    settings = settings_from_args(args)
    assert settings.batch_roots == (tmp_path / "photos", Path("/srv/in"))
    assert FolderPolicy.from_settings(settings).restricted
