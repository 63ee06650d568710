"""A1111's option keys that mean something here: their defaults, checks, labels and sections.

Only keys this studio acts on are listed (A1111 has ~300); an unknown key is refused by the
options store, never silently dropped. `server_wide`: on a shared server (--listen, --share, a
hosted demo) only the local operator may change it; the model and the VAE stay anyone's to switch,
as they were before this store existed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.checkpoints.face_files import RESTORERS
from studio.errors import RequestError, check_int, check_number, check_text, check_type
from studio.records.filenames import check_pattern
from studio.request import MAX_CFG, MAX_CLIP_SKIP, MAX_CONTROL_UNITS, MAX_STEPS
from studio.settings import Settings

# studio.checkpoints.openvino_unet.BACKENDS (that module imports torch; the web layer must not): a test keeps them equal
BACKENDS = ("auto", "eager", "openvino")

FACE_RESTORERS = tuple(RESTORERS)  # A1111's names: CodeFormer, GFPGAN (and RestoreFormer)
# studio.generation.previews' methods (that module imports torch; the web layer must not): a test keeps them equal
PREVIEW_METHODS = ("Approx cheap", "TAESD", "Full")

Check = Callable[[str, Any], Any]  # (key, value) -> the value to keep; raises RequestError


@dataclass(frozen=True)
class Option:
    default: Any
    check: Check
    label: str  # A1111's label on its Settings page
    section: str
    choices: tuple[str, ...] | None = None
    server_wide: bool = True


def boolean(key: str, value: Any) -> bool:
    check_type(key, value, bool)
    return bool(value)


def whole(low: int, high: int) -> Check:
    def check(key: str, value: Any) -> int:
        check_int(key, value, low, high)
        return int(value)
    return check


def choice(options: tuple[str, ...]) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in options:
            raise RequestError(f"{key} must be one of: {', '.join(options)} (got {value!r})")
        return str(value)
    return check


def text(key: str, value: Any) -> str:
    check_text(key, value, 200)
    return str(value)


def pattern(key: str, value: Any) -> str:
    check_text(key, value, 200)
    check_pattern(value)
    return str(value)


def folder(key: str, value: Any) -> str:
    """A folder to save into: not empty, not an existing file (made when the first image is saved)."""
    check_text(key, value, 1000)
    if not value.strip():
        raise RequestError(f"{key} must name a folder")
    if Path(value).expanduser().is_file():
        raise RequestError(f"{key}: {value!r} is a file, not a folder")
    return str(value)


def number(low: float, high: float) -> Check:
    def check(key: str, value: Any) -> float:
        check_number(key, value, low, high)
        return float(value)
    return check


def option_table(settings: Settings, samplers: tuple[str, ...] = ()) -> dict[str, Option]:
    """The keys with this run's defaults (the command line's live preview flags, its outputs folder);
    `samplers`: the registry's names, the choices of the default sampler."""
    every = settings.live_preview_every
    return {
        # The txt2img/img2img forms' starting values (A1111 keeps these in ui-config.json; one store here).
        "default_sampler_name": Option("Euler a", choice(samplers) if samplers else text, "Default sampler",
                                       "Defaults", samplers or None),
        "default_steps": Option(20, whole(1, MAX_STEPS), "Default sampling steps", "Defaults"),
        "default_cfg_scale": Option(7.0, number(0.0, MAX_CFG), "Default CFG scale", "Defaults"),
        # The UNet's backend (--backend is its default): applies from the next job; openvino converts once per
        # model and LoRA set (cached) and refuses ControlNet, step caching, token merging and the refiner.
        "backend": Option(settings.backend, choice(BACKENDS), "UNet backend (auto: eager; openvino: CPU, converted "
                          "once per model and LoRA set)", "Optimizations", BACKENDS),
        "CLIP_stop_at_last_layers": Option(1, whole(1, MAX_CLIP_SKIP), "Clip skip (requests that set none use this)",
                                           "Stable Diffusion"),
        # A1111's face restoration options ("Restore faces" runs this restorer; CodeFormer's fidelity weight).
        "face_restoration_model": Option("CodeFormer", choice(FACE_RESTORERS), "Face restoration model",
                                         "Face restoration", FACE_RESTORERS),
        "code_former_weight": Option(0.5, number(0.0, 1.0),
                                     "CodeFormer weight (0 = maximum effect; 1 = minimum effect)", "Face restoration"),
        # A1111's eta options (Sampler parameters): requests that set no `eta` use these.
        "eta_ddim": Option(0.0, number(0.0, 1.0), "Eta for DDIM (noise multiplier)", "Sampler parameters"),
        "eta_ancestral": Option(1.0, number(0.0, 1.0), "Eta for k-diffusion samplers (noise multiplier; "
                                "ancestral and SDE samplers)", "Sampler parameters"),
        "live_previews_enable": Option(every > 0, boolean, "Show live previews of the created image", "Live previews"),
        "show_progress_every_n_steps": Option(every if every > 0 else 10, whole(1, 1000),
                                              "Live preview display period (steps)", "Live previews"),
        "show_progress_type": Option(settings.live_preview_method, choice(PREVIEW_METHODS), "Live preview method",
                                     "Live previews", PREVIEW_METHODS),
        "samples_save": Option(True, boolean, "Always save all generated images", "Saving images"),
        "samples_format": Option("png", choice(("png",)), "File format for images (PNG only: it carries the recipe)",
                                 "Saving images", ("png",)),
        "samples_filename_pattern": Option("", pattern, "Images filename pattern ([seed], [prompt_words], "
                                           "[model_name], [date], [sampler], [steps], [cfg], [width], [height] ...)",
                                           "Saving images"),
        # A1111's batch grid (its defaults are on; off here so a batch's API answer stays its images).
        "return_grid": Option(False, boolean, "Show grid in gallery (and first in the API's images) for a batch",
                              "Saving images"),
        "grid_save": Option(False, boolean, "Always save all generated image grids (outputs/txt2img-grids)",
                            "Saving images"),
        "n_rows": Option(-1, whole(-1, 16), "Grid row count; use -1 for autodetect and 0 for it to be same as "
                         "batch size", "Saving images"),
        "outdir_txt2img_samples": Option(str(settings.outputs_dir / "txt2img-images"), folder,
                                         "Output directory for txt2img images", "Paths for saving"),
        "outdir_img2img_samples": Option(str(settings.outputs_dir / "img2img-images"), folder,
                                         "Output directory for img2img images", "Paths for saving"),
        # sd-webui-controlnet's key; the flag --control-net-unit-count is its default. Requests are admitted
        # against it at once; the UI builds its panels at start (a restart shows a new count there).
        "control_net_unit_count": Option(settings.control_net_unit_count, whole(1, MAX_CONTROL_UNITS),
                                         "Multi-ControlNet: ControlNet unit number (requires restart for the UI)",
                                         "ControlNet"),
    }


# Read by the API and changed elsewhere: the model (its own switch) and its hash.
LIVE_KEYS = ("sd_model_checkpoint", "sd_vae")
READ_ONLY_KEYS = ("sd_checkpoint_hash",)
SHARED_KEYS = frozenset(LIVE_KEYS)  # anyone may switch these on a shared server, as before
