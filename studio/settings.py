"""Frozen run settings: where things live and how models run. Built once from CLI/env."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

Credentials = tuple[str, str]  # (user, password)

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent


@dataclass(frozen=True)
class Settings:
    models_dir: Path = PROJECT_DIR / "models"
    outputs_dir: Path = PROJECT_DIR / "outputs"
    extensions_dir: Path = PROJECT_DIR / "extensions"
    cache_dir: Path = PROJECT_DIR / ".cache"
    styles_file: Path = PROJECT_DIR / "styles.csv"  # the user's prompt styles (A1111's file, user data)
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    allow_pickle: bool = False
    # Hugging Face repo ids as model titles (command line and the user's own switch only).
    allow_hub: bool = False
    safe_mode: bool = False
    threads: int | None = None  # torch CPU threads; None: the physical cores
    # torch.compile the UNet (inductor, frozen weights), compile cache in cache_dir (studio/checkpoints/compilation.py).
    compile: bool = False
    # The UNet's backend: auto (eager for now), eager (torch) or openvino (studio/checkpoints/openvino_unet.py);
    # the Settings page's `backend` option starts from it.
    backend: str = "auto"
    # CUDA memory (A1111's flags): model CPU offload / sequential CPU offload (studio/checkpoints/offload.py).
    medvram: bool = False
    lowvram: bool = False
    # Live previews in the UI while sampling: every N steps (0: off), by one of studio.generation.previews' methods.
    live_preview_every: int = 5
    live_preview_method: str = "Approx cheap"
    # Server options: only app.py / `python -m studio serve` read these.
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: "Credentials | tuple[Credentials, ...] | None" = field(default=None, repr=False)  # one user or several
    open_browser: bool = True
    # HTTP API (A1111-compatible /sdapi/v1): on by default; needs api_auth off loopback.
    api: bool = True
    api_auth: "Credentials | tuple[Credentials, ...] | None" = field(default=None, repr=False)
    # A public demo by design (a Hugging Face Space): the UI is open to anyone, the API only with
    # credentials, outputs in a temporary folder, extensions locked (studio/cli/spaces.py).
    hosted_demo: bool = False
    # Gradio uploads on a shared server (a Space, or listening beyond this computer): what one visitor
    # and everyone together may upload within upload_max_age seconds; older cached uploads are swept.
    upload_quota_mb: int = 256
    upload_total_mb: int = 2048
    upload_max_age: int = 3600
    # Sharing (studio/service/queue.py): at most this many jobs queued or running; beyond it "queue full".
    queue_size: int = 16
    # Each user's (login, browser session or API client) share of the queue: beyond it, 429.
    queue_per_user: int = 4
    # Interrupt/Skip (UI and /sdapi/v1/interrupt, /skip) stop every job, not only the caller's (A1111's way).
    admin_interrupt: bool = False
    # Extensions: enabling/disabling them from the UI is refused off loopback unless this is set.
    enable_insecure_extension_access: bool = False
    # Folders (besides outputs/) that batch jobs may read from when the server is reachable from
    # other machines; the local operator may name any folder (studio/service/folders.py).
    batch_roots: tuple[Path, ...] = ()
    # ControlNet units a request may use and the UI shows (sd-webui-controlnet's `control_net_unit_count`).
    control_net_unit_count: int = 3

    def replace(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    @property
    def listens_publicly(self) -> bool:
        return self.share or self.host not in ("127.0.0.1", "localhost", "::1")
