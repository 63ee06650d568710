"""Extensions: discovery, staging, isolation, enable/disable, and the shipped extensions.

The fixture extensions (tests/fixtures/extensions) break in every way the issue lists; they sit
beside the shipped ones (extensions/) in a temporary extensions folder.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.api import API_VERSION, RegistrationError
from studio.cli.main import build_parser
from studio.cli.settings_flags import settings_from_args
from studio.generation.samplers import CORE_SAMPLERS, SAMPLERS
from studio.records.pnginfo import read_generation_info
from studio.request import GenerationRequest
from studio.service.container import Services, build_services
from studio.service.extensions.loading import ExtensionAccessError, compatibility_problem
from studio.service.extensions.manager import ExtensionManager
from studio.settings import PROJECT_DIR, Settings

FIXTURES = Path(__file__).parent / "fixtures" / "extensions"
SHIPPED = PROJECT_DIR / "extensions"
DOCS = PROJECT_DIR / "docs" / "extensions.md"
BASE = GenerationRequest(prompt="a red circle on a blue background", steps=3, width=64, height=64, seed=21)
EXTRA_SAMPLER = "DPM++ 3M SDE Karras"


def copy_extensions(target: Path, *sources: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for folder in source.iterdir():
            if folder.is_dir() and folder.name != "__pycache__":
                shutil.copytree(folder, target / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def make_settings(root: Path, **changes) -> Settings:
    return Settings(models_dir=root / "models", outputs_dir=root / "outputs", cache_dir=root / "cache",
                    extensions_dir=copy_extensions(root / "extensions", FIXTURES, SHIPPED), **changes)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def statuses(manager: ExtensionManager) -> dict[str, str]:
    return {row["folder"]: row["status"] for row in manager.rows()}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """These tests compare images made in this process only: one thread keeps them fast on a busy CPU."""


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Services:
    return build_services(make_settings(tmp_path_factory.mktemp("extensions")))


@pytest.fixture
def fresh_studio(tmp_path: Path) -> Services:
    return build_services(make_settings(tmp_path))


def test_every_extension_gets_a_status_and_a_reason(studio):
    found = statuses(studio.extensions.manager)
    assert "_private" not in found and "skipped.disabled" not in found
    assert found["broken_import"] == "failed: RuntimeError: this extension is broken at import"
    assert found["broken_register"] == "failed: ValueError: register failed on purpose"
    assert found["future_api"].startswith("failed: incompatible api_version '99.0'")
    assert f"provides extension API {API_VERSION}" in found["future_api"]
    assert found["override_core"] == "failed: RegistrationError: sampler 'Euler' already exists; extensions cannot replace it"
    assert found["no_manifest"] == "failed: no extension.toml"
    for name in ("xyz_plot", "extra_sampler", "dynamic_prompts", "prompt_comments", "flaky_hook", "broken_tab"):
        assert found[name].startswith("loaded"), (name, found[name])
    assert studio.extensions.manager.records["xyz_plot"].module.__name__ == "studio_ext_xyz_plot"


def test_staging_is_merged_only_on_success_and_core_samplers_stay_untouched(studio):
    samplers = studio.generation.engine.samplers
    assert samplers is studio.extensions.manager.samplers and samplers is not SAMPLERS
    assert set(SAMPLERS) == CORE_SAMPLERS  # the core registry is never mutated
    assert list(samplers) == [*SAMPLERS, EXTRA_SAMPLER]  # nothing from failed registrations
    assert samplers["Euler"] is SAMPLERS["Euler"]
    assert [hook.extension for hook in studio.extensions.manager.before_hooks] == ["flaky_hook", "prompt_comments"]
    assert [hook.extension for hook in studio.extensions.manager.image_hooks] == ["dynamic_prompts"]
    assert studio.models.sampler_names() == list(samplers)  # the UI's choices are the registry


def test_the_app_generates_correctly_with_every_broken_extension_present(studio):
    job = studio.generation.submit(BASE)
    direct = studio.generation.engine.run(BASE)  # no hooks at all
    assert job.request.prompt == BASE.prompt
    assert np.array_equal(pixels(job.images[0].image), pixels(direct.images[0].image))
    saved = read_generation_info(job.images[0].path)["params"]
    assert (saved["Prompt"], saved["Seed"], saved["Steps"]) == (BASE.prompt, "21", "3")


def test_a_hook_that_keeps_failing_is_disabled_after_three_failures(fresh_studio):
    notices = [fresh_studio.generation.submit(BASE.replace(steps=1)).notices for _ in range(4)]
    assert [len(n) for n in notices] == [1, 1, 1, 0]
    assert notices[0][0] == "Extension 'Flaky hook' failed in before_generate (1/3): RuntimeError: flaky hook failed again"
    assert notices[2][0].endswith("'Flaky hook' is disabled for this session.")
    status = statuses(fresh_studio.extensions.manager)["flaky_hook"]
    assert status.startswith("disabled for this session: failed 3 time(s), last in before_generate")
    assert statuses(fresh_studio.extensions.manager)["dynamic_prompts"] == "loaded"  # others are not affected


def test_a_tab_that_fails_to_build_reports_its_error(fresh_studio):
    tabs = {tab.title: tab for tab in fresh_studio.extensions.manager.guarded_tabs(fresh_studio.extensions.context())}
    error = tabs["Broken tab"].build()
    assert error == "Extension 'Broken tab' failed in tab 'Broken tab' (1/3): RuntimeError: tab build failed on purpose"


def test_safe_mode_loads_no_extension(tmp_path):
    safe = build_services(make_settings(tmp_path, safe_mode=True))
    assert set(statuses(safe.extensions.manager).values()) == {"not loaded (safe mode)"}
    assert list(safe.generation.engine.samplers) == list(SAMPLERS)
    assert not safe.extensions.manager.before_hooks and not safe.extensions.manager.scripts and not safe.extensions.manager.tabs
    job = safe.generation.submit(BASE.replace(prompt="a {red|blue} circle", steps=1))
    assert job.request.prompt == "a {red|blue} circle" and not job.notices


def test_cli_flags_reach_settings():
    args = build_parser().parse_args(["serve", "--safe-mode", "--enable-insecure-extension-access"])
    settings = settings_from_args(args)
    assert settings.safe_mode and settings.enable_insecure_extension_access
    assert not settings_from_args(build_parser().parse_args(["serve"])).enable_insecure_extension_access


def test_enable_disable_is_persisted_and_applies_at_the_next_start(tmp_path):
    settings = make_settings(tmp_path)
    manager = ExtensionManager(settings).load_all()
    message = manager.set_enabled("xyz_plot", False)
    assert message.startswith("Disabled 'X/Y/Z plot': its hooks and scripts stop now")
    assert json.loads(manager.state_path.read_text()) == {"disabled": ["xyz_plot"]}
    assert "X/Y/Z plot" not in [s.title for s in manager.guarded_scripts(lambda *a: None)]  # stops at once
    restarted = ExtensionManager(settings).load_all()
    assert statuses(restarted)["xyz_plot"] == "disabled"
    assert "X/Y/Z plot" not in [script.title for script in restarted.scripts]
    assert restarted.set_enabled("xyz_plot", True) == "Enabled 'X/Y/Z plot': it loads at the next start."
    assert statuses(ExtensionManager(settings).load_all())["xyz_plot"] == "loaded"


@pytest.mark.parametrize("public", [{"host": "0.0.0.0"}, {"share": True}])
def test_enable_disable_is_refused_when_listening_publicly(tmp_path, public):
    manager = ExtensionManager(make_settings(tmp_path, **public)).load_all()
    with pytest.raises(ExtensionAccessError, match="--enable-insecure-extension-access"):
        manager.set_enabled("xyz_plot", False)
    assert not manager.state_path.exists()
    allowed = ExtensionManager(make_settings(tmp_path / "allowed", enable_insecure_extension_access=True, **public))
    assert allowed.load_all().set_enabled("xyz_plot", False).startswith("Disabled")


def test_api_versions():
    assert compatibility_problem("1") is None and compatibility_problem(API_VERSION) is None
    assert "incompatible" in compatibility_problem("2.0")
    assert "incompatible" in compatibility_problem("1.99")


def write_extension(root: Path, folder: str, code: str) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "extension.toml").write_text(f'name = "{folder}"\nversion = "1"\napi_version = "1.0"\n')
    (root / folder / "__init__.py").write_text(code)


def test_after_image_hooks_change_the_saved_image_and_add_infotext_keys(tmp_path):
    root = tmp_path / "extensions"
    write_extension(root, "invert", (
        "from PIL import ImageOps\n"
        "def register(api):\n"
        "    api.on_after_image(lambda image, request: (ImageOps.invert(image), {'Inverted': 'yes', 'Seed': 0}))\n"
        "    api.add_preprocessor('hello_invert', lambda image, **params: ImageOps.invert(image))\n"
        "    assert 'auth' not in api.settings and 'api_auth' not in api.settings\n"))
    write_extension(root, "bad_after", "def register(api):\n    api.on_after_image(lambda image, request: 42)\n")
    settings = Settings(models_dir=tmp_path / "models", outputs_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
                        extensions_dir=root, auth=("user", "secret"))
    studio = build_services(settings)
    assert statuses(studio.extensions.manager) == {"bad_after": "loaded", "invert": "loaded"}
    job = studio.generation.submit(BASE.replace(steps=1))
    plain = studio.generation.engine.run(BASE.replace(steps=1)).images[0].image
    saved = Image.open(job.images[0].path)
    assert np.array_equal(pixels(saved), 255 - pixels(plain))
    params = read_generation_info(job.images[0].path)["params"]
    assert params["Inverted"] == "yes" and params["Seed"] == "21"  # extensions never replace core keys
    assert job.notices == ("Extension 'bad_after' failed in after_image (1/3): TypeError: after_image returned int; "
                           "expected a PIL image, (image or None, {infotext key: value}) or None",)
    flipped = studio.extensions.manager.run_preprocessor("hello_invert", plain)
    assert np.array_equal(pixels(flipped), 255 - pixels(plain))


def test_extension_names_cannot_be_taken_twice(tmp_path):
    root = tmp_path / "extensions"
    write_extension(root, "a_alias", (
        "from diffusers import DDIMScheduler\nfrom studio.api import SamplerSpec\n"
        "def register(api):\n    api.add_sampler('Mine', SamplerSpec(DDIMScheduler, aliases=('k_euler',)))\n"))
    write_extension(root, "b_case", (
        "from diffusers import DDIMScheduler\nfrom studio.api import SamplerSpec\n"
        "def register(api):\n    api.add_sampler('euler A', SamplerSpec(DDIMScheduler))\n"))
    manager = ExtensionManager(Settings(extensions_dir=root, cache_dir=tmp_path / "cache")).load_all()
    assert statuses(manager) == {
        "a_alias": "failed: RegistrationError: sampler 'k_euler' already exists; extensions cannot replace it",
        "b_case": "failed: RegistrationError: sampler 'euler A' already exists; extensions cannot replace it",
    }
    assert issubclass(RegistrationError, ValueError)
    write_extension(root, "c_canny", "def register(api):\n    api.add_preprocessor('Canny', lambda image: image)\n")
    again = ExtensionManager(Settings(extensions_dir=root, cache_dir=tmp_path / "cache")).load_all()
    assert statuses(again)["c_canny"] == "failed: RegistrationError: preprocessor 'Canny' already exists; extensions cannot replace it"


# -- shipped extensions ------------------------------------------------------------------------


def test_the_extra_sampler_generates(studio):
    job = studio.generation.submit(BASE.replace(sampler_name=EXTRA_SAMPLER))
    assert read_generation_info(job.images[0].path)["params"]["Sampler"] == EXTRA_SAMPLER
    assert pixels(job.images[0].image).std() > 0
    alias = studio.generation.submit(BASE.replace(sampler_name="k_dpmpp_3m_sde_ka"), save=False)
    assert np.array_equal(pixels(alias.images[0].image), pixels(job.images[0].image))
    scheduler = studio.generation.engine.models.current().mode_pipelines["txt2img"].scheduler
    assert (scheduler.config.solver_order, scheduler.config.algorithm_type) == (3, "sde-dpmsolver++")


def test_dynamic_prompts_expand_from_the_seed_and_record_the_template(studio):
    template = BASE.replace(prompt="a {red|green|blue} __shape__", negative_prompt="{yellow|purple}")
    first, again = studio.generation.submit(template), studio.generation.submit(template, save=False)
    prompt = first.request.prompt
    assert re.fullmatch(r"a (red|green|blue) (circle|square|triangle)", prompt)
    assert again.request.prompt == prompt and first.request.negative_prompt in ("yellow", "purple")
    params = read_generation_info(first.images[0].path)["params"]
    assert params["Prompt"] == prompt
    assert params["Template"] == "a {red|green|blue} __shape__" and params["Negative Template"] == "{yellow|purple}"
    # The saved prompt alone regenerates the image (no extension needed).
    plain = studio.generation.engine.run(first.request)
    assert np.array_equal(pixels(plain.images[0].image), pixels(first.images[0].image))
    seeds = {studio.generation.submit(template.replace(seed=seed), save=False).request.prompt for seed in range(8)}
    assert len(seeds) > 1


def dynamic_prompts(studio: Services):
    """The extension's module and the options object its hook reads."""
    [hook] = [h for h in studio.extensions.manager.image_hooks if h.extension == "dynamic_prompts"]
    return studio.extensions.manager.records["dynamic_prompts"].module, hook.fn.args[1]


def test_dynamic_prompts_expand_per_image_and_reproduce_exactly(studio):
    """Issue 18 item 9: batch count 2 × batch size 2 gives each image the expansion of its own seed;
    each PNG records its prompt and the template, and Reproduce regenerates it bit for bit."""
    module, _ = dynamic_prompts(studio)
    template = BASE.replace(prompt="a {red|green|blue|yellow|purple} {circle|square|triangle}", seed=40, steps=2,
                            n_iter=2, batch_size=2)
    job = studio.generation.submit(template)
    cards = module.load_wildcards(SHIPPED / "dynamic_prompts" / "wildcards")
    expected = [module.expand(template.prompt, __import__("random").Random(40 + i), cards) for i in range(4)]
    assert len(set(expected)) > 1  # these seeds give different expansions
    for item, prompt in zip(job.images, expected):
        params = read_generation_info(item.path)["params"]
        assert (params["Prompt"], params["Seed"], params["Template"]) == (prompt, str(item.seed), template.prompt)
        assert item.recipe["request"]["prompt"] == prompt
    assert job.request.prompt == template.prompt  # the images differ: the job keeps the template
    for index in (1, 2):
        again = studio.generation.reproduce_image(job.images[index].path)
        assert np.array_equal(pixels(again.image.image), pixels(job.images[index].image))
        assert again.image.infotext.split("\n")[0] == expected[index]


def test_dynamic_prompts_combinatorial_mode_gives_image_i_the_ith_combination(studio):
    module, options = dynamic_prompts(studio)
    assert module.combinations("a {red|blue} {circle|square}", {}) == [
        "a red circle", "a red square", "a blue circle", "a blue square"]
    assert module.combinations("__shape__ {x|x}", {"shape": ["o", "[]"]}) == ["o x", "[] x"]
    options.set_mode("combinatorial")
    try:
        job = studio.generation.submit(BASE.replace(prompt="a {red|blue} {circle|square}", steps=1, n_iter=5), save=False)
    finally:
        options.set_mode("random")
    prompts = [read_generation_info_text(item.infotext) for item in job.images]
    assert prompts == ["a red circle", "a red square", "a blue circle", "a blue square", "a red circle"]


def read_generation_info_text(text: str) -> str:
    return text.split("\n")[0]


def test_the_documented_example_is_the_shipped_one_and_works(studio):
    text = DOCS.read_text()
    for name in ("extension.toml", "__init__.py"):
        block = re.search(rf"extensions/prompt_comments/{re.escape(name)}:\n\n```\w+\n(.*?)```", text, re.S)
        assert block, name
        assert block.group(1) == (SHIPPED / "prompt_comments" / name).read_text()
    job = studio.generation.submit(BASE.replace(prompt="a red circle\n# try blue next", steps=1), save=False)
    assert job.request.prompt == "a red circle"


def xyz_script(studio: Services):
    return next(s for s in studio.extensions.scripts() if s.title == "X/Y/Z plot")


def test_xyz_plot_2x2_seed_by_cfg(studio):
    values = {"x_type": "Seed", "x_values": "11, 12", "y_type": "CFG Scale", "y_values": "3, 9",
              "z_type": "Nothing", "z_values": "", "draw_legend": True}
    result = xyz_script(studio).run(BASE, values)
    grid_path, *cells = [path for path, caption in result.images]
    assert len(cells) == 4 and grid_path.parent.parent.name == "txt2img-grids"
    grid = Image.open(grid_path).convert("RGB")
    left, top = grid.width - 128, grid.height - 128
    assert left > 0 and top > 0  # room for the row and column labels

    expected = [(11, 3), (12, 3), (11, 9), (12, 9)]  # X varies fastest, as in A1111
    for (seed, cfg), path, text in zip(expected, cells, result.infotexts[1:]):
        params = read_generation_info(path)["params"]
        assert (params["Seed"], params["CFG scale"]) == (str(seed), str(cfg))
        assert read_generation_info(path)["infotext"] == text
    grid_info = read_generation_info(grid_path)["params"]
    assert (grid_info["Script"], grid_info["X Type"], grid_info["X Values"]) == ("X/Y/Z plot", "Seed", "11, 12")
    assert (grid_info["Y Type"], grid_info["Y Values"]) == ("CFG Scale", "3, 9")

    # Each grid cell equals generating that cell on its own.
    one_by_one = [studio.generation.submit(BASE.replace(seed=s, cfg_scale=float(c)), save=False).images[0].image
                  for s, c in expected]
    for i, image in enumerate(one_by_one):
        x, y = left + (i % 2) * 64, top + (i // 2) * 64
        assert np.array_equal(pixels(grid.crop((x, y, x + 64, y + 64))), pixels(image)), f"cell {i}"

    # The label strips hold exactly the expected labels (and some ink in each).
    module = studio.extensions.manager.records["xyz_plot"].module
    redrawn = module.draw_grid([one_by_one[:2], one_by_one[2:]], ["Seed: 11", "Seed: 12"], ["CFG Scale: 3", "CFG Scale: 9"])
    assert np.array_equal(pixels(redrawn), pixels(grid))
    ink = pixels(grid).min(axis=2) < 128
    assert ink[:top, left:left + 64].any() and ink[:top, left + 64:].any()
    assert ink[top:top + 64, :left].any() and ink[top + 64:, :left].any()


def test_xyz_plot_values_and_errors(studio):
    module = studio.extensions.manager.records["xyz_plot"].module
    axes = __import__(module.__name__ + ".axes", fromlist=["numbers"])
    assert axes.numbers(["1-5 (+2)", "8"], int, "Steps") == [1, 3, 5, 8]
    assert axes.numbers(["5-9 [3]"], float, "CFG") == [5.0, 7.0, 9.0]
    assert axes.split_values('a, "b, c",d') == ["a", "b, c", "d"]
    script = xyz_script(studio)
    bad = {"x_type": "Steps", "x_values": "4, lots", "y_type": "Nothing", "z_type": "Nothing"}
    with pytest.raises(ValueError, match="Steps: 'lots' is not a number"):
        script.run(BASE, bad)
    with pytest.raises(ValueError, match="Sampler: unknown 'Nope'"):
        script.run(BASE, {**bad, "x_type": "Sampler", "x_values": "Euler, Nope"})
    with pytest.raises(ValueError, match="Denoising needs a source image"):
        script.run(BASE, {**bad, "x_type": "Denoising", "x_values": "0.5"})
    assert studio.extensions.manager.records["xyz_plot"].failures == 0  # bad input is not the extension's fault
    sr = script.run(BASE.replace(steps=1), {**bad, "x_type": "Prompt S/R", "x_values": "red, green"})
    assert [caption for _, caption in sr.images[1:]] == ["red", "green"]
    assert read_generation_info(sr.images[2][0])["params"]["Prompt"] == "a green circle on a blue background"


def test_run_script_takes_a1111_script_args_for_the_xyz_plot(studio):
    """Issue 18 item 8 (API side): script_name / script_args run the X/Y/Z plot, grid first."""
    from studio.service.extensions.scripts import ScriptRequestError

    args = [1, "11, 12", [], 6, "3, 9", [], 0, "", [], True, False, False, False, False, False, False, 0, False]
    job = studio.extensions.run_script(BASE, "x/y/z plot", args)
    grid, *cells = job.images
    assert not job.interrupted and len(cells) == 4
    assert grid.path.parent.parent.name == "txt2img-grids" and grid.image.size[0] > 128
    params = read_generation_info(grid.path)["params"]
    assert (params["X Type"], params["X Values"], params["Y Type"]) == ("Seed", "11, 12", "CFG Scale")
    assert [(c.seed, read_generation_info(c.path)["params"]["CFG scale"]) for c in cells] == [
        (11, "3"), (12, "3"), (11, "9"), (12, "9")]
    assert all(c.recipe["request"]["seed"] == c.seed for c in cells)

    # Labels instead of indices, the older layout without dropdowns, a dropdown list as the values.
    steps = studio.extensions.run_script(BASE, "X/Y/Z plot", ["Steps", "1, 2", "Nothing", "", "Nothing", "", False])
    assert [read_generation_info(c.path)["params"]["Steps"] for c in steps.images[1:]] == ["1", "2"]
    sampler = studio.extensions.run_script(BASE.replace(steps=1), "X/Y/Z plot", [9, "", ["Euler", "DDIM"], 0, "", None,
                                                                       0, "", None, True])
    assert [read_generation_info(c.path)["params"]["Sampler"] for c in sampler.images[1:]] == ["Euler", "DDIM"]

    with pytest.raises(ScriptRequestError, match="script_name: no script named 'Loopback'"):
        studio.extensions.run_script(BASE, "Loopback", [])
    with pytest.raises(ScriptRequestError, match="script_args: X type index 8 is not supported"):
        studio.extensions.run_script(BASE, "X/Y/Z plot", [8, "1, 2"])
    with pytest.raises(ScriptRequestError, match="script_args: Steps: 'many' is not a number"):
        studio.extensions.run_script(BASE, "X/Y/Z plot", ["Steps", "many"])


def test_xyz_plot_var_strength_axis_varies_one_fixed_variation_seed(studio):
    # A1111's index 3 is "Var. strength"; with the tab's variation seed -1 one is drawn for the whole plot.
    from studio.service.extensions.scripts import ScriptRequestError

    plot = studio.extensions.run_script(BASE.replace(steps=2, subseed=-1), "X/Y/Z plot", [3, "0, 0.5, 1", None, 0, "", None,
                                                                                0, "", None, True])
    cells = plot.images[1:]
    params = [read_generation_info(c.path)["params"] for c in cells]
    assert [p.get("Variation seed strength") for p in params] == [None, "0.5", "1"]  # strength 0: plain seed
    assert params[1]["Variation seed"] == params[2]["Variation seed"]
    grid = read_generation_info(plot.images[0].path)["params"]
    assert (grid["X Type"], grid["X Values"]) == ("Var. strength", "0, 0.5, 1")
    # The pixels, with a fixed variation seed (a random one may by chance look much like the seed).
    fixed = studio.extensions.run_script(BASE.replace(steps=2, subseed=4321), "X/Y/Z plot", ["Var. strength", "0, 0.5, 1"])
    images = [np.asarray(c.image, dtype=np.int16) for c in fixed.images[1:]]
    assert np.abs(images[0] - images[1]).mean() > 0.5 and np.abs(images[1] - images[2]).mean() > 0.5
    with pytest.raises(ScriptRequestError, match="Var. strength: 2 is outside 0..1"):
        studio.extensions.run_script(BASE, "X/Y/Z plot", ["Var. strength", "0, 2"])


HANGING = Path(__file__).parent / "fixtures" / "hanging_extensions"


def test_an_extension_that_loops_or_exits_while_loading_is_skipped_and_start_up_goes_on(tmp_path):
    import time

    settings = Settings(extensions_dir=copy_extensions(tmp_path / "extensions", HANGING), cache_dir=tmp_path / "cache")
    start = time.monotonic()
    manager = ExtensionManager(settings, load_timeout=1.0).load_all()
    assert time.monotonic() - start < 30  # two 1 s time limits, not forever
    rows = statuses(manager)
    assert rows["loops_at_import"].startswith("failed: took > 1 s to load, skipped")
    assert rows["sleeps_in_register"].startswith("failed: took > 1 s to load, skipped")
    assert rows["exits_in_register"] == "failed: SystemExit: 3"
    assert rows["exits_in_hook"] == rows["good"] == "loaded"
    notices: list[str] = []
    request, _ = manager.before_generate(BASE, notices)  # the SystemExit hook fails; the good one runs
    assert request.prompt == BASE.prompt + ", good"
    assert notices == ["Extension 'exits_in_hook' failed in before_generate (1/3): "
                       "SystemExit: an extension tried to end the app"]


def test_a_stuck_extension_thread_does_not_block_exit(tmp_path):
    """The loading thread of an extension stuck in C code is a daemon: the process still exits."""
    import subprocess
    import sys

    extensions = copy_extensions(tmp_path / "extensions", HANGING)
    code = ("from pathlib import Path; from studio.service.extensions.manager import ExtensionManager; from studio.settings import Settings;"
            f"m = ExtensionManager(Settings(extensions_dir=Path({str(extensions)!r}), cache_dir=Path({str(tmp_path)!r})),"
            " load_timeout=1.0).load_all(); print(m.records['sleeps_in_register'].status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          cwd=PROJECT_DIR, env={**__import__("os").environ, "PYTHONPATH": str(PROJECT_DIR)})
    assert done.returncode == 0, done.stderr
    assert "took > 1 s to load, skipped" in done.stdout
