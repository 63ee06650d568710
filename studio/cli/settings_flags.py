"""The flags every command shares: folders, device, threads, and the server's (address, credentials,
queue); turned into frozen Settings."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from studio.request import MAX_CONTROL_UNITS
from studio.settings import Credentials, Settings


def add_settings_flags(parser: argparse.ArgumentParser, with_model: bool = True) -> None:
    defaults = Settings()
    parser.add_argument("--models-dir", type=Path, default=defaults.models_dir, help="folder laid out as A1111's models/")
    parser.add_argument("--outputs-dir", type=Path, default=defaults.outputs_dir, help="where images are saved")
    parser.add_argument("--extensions-dir", type=Path, default=defaults.extensions_dir,
                        help="folder of the extensions to load (default: extensions/ of the project)")
    parser.add_argument("--styles-file", type=Path, default=defaults.styles_file,
                        help="A1111 styles.csv to read and save prompt styles in")
    if with_model:  # `generate` takes --model as the request's field instead
        parser.add_argument("--model", dest="settings_model", default=None, help="model to load at start (title, file name or HF repo id)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16 or bfloat16")
    parser.add_argument("--allow-pickle", action="store_true", help="allow .ckpt/.pt/.bin checkpoints (loaded weights-only)")
    parser.add_argument("--allow-hub", action="store_true",
                        help="allow Hugging Face repo ids (org/name) as --model and in the model switch; "
                             "never from requests or PNGs")
    parser.add_argument("--safe-mode", action="store_true", help="start with no extensions loaded")
    parser.add_argument("--live-preview-every", type=int, default=defaults.live_preview_every,
                        help="show a preview image in the UI every N sampling steps (0: off)")
    parser.add_argument("--live-preview-method", default=defaults.live_preview_method,
                        choices=("Approx cheap", "TAESD", "Full"),
                        help="Approx cheap (free), TAESD (needs models/VAE-approx/taesd*), Full (VAE decode)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the UNet (opt-in, for long-running servers: the first image of each "
                             "size compiles, later ones run faster; the compile cache is kept in the cache folder)")
    parser.add_argument("--backend", default=defaults.backend, choices=("auto", "eager", "openvino"),
                        help="the UNet's (and VAE decoder's, text encoders') backend: eager (torch), openvino (converted once "
                             "per model and LoRA set, "
                             "cached in the cache folder; CPU only; needs `pip install openvino`), auto (eager); "
                             "also a Settings choice")
    parser.add_argument("--medvram", action="store_true",
                        help="CUDA: keep each model (text encoder, UNet, VAE) in CPU RAM until it runs (less VRAM)")
    parser.add_argument("--lowvram", action="store_true",
                        help="CUDA: move every layer to the GPU only while it runs (least VRAM, slow)")
    parser.add_argument("--control-net-unit-count", type=unit_count, default=defaults.control_net_unit_count,
                        help="ControlNet units per request and in the UI (sd-webui-controlnet's control_net_unit_count, "
                             "at most 10)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: physical cores; fewer when other work shares the CPU)")


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", action="store_true", help="listen on all interfaces (0.0.0.0)")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port to listen on (default: 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")
    parser.add_argument("--auth", default=None,
                        help="user:pass required to open the UI (several: u1:p1,u2:p2); or set STUDIO_AUTH")
    parser.add_argument("--auth-file", type=Path, default=None,
                        help="file of user:pass lines (A1111's --gradio-auth-path format): keeps passwords out of "
                             "the process list")
    parser.add_argument("--api", action=argparse.BooleanOptionalAction, default=True,
                        help="serve the A1111-compatible HTTP API at /sdapi/v1 and its docs at /docs (default: on)")
    parser.add_argument("--api-auth", default=None,
                        help="user:pass for HTTP Basic on every API route (or set STUDIO_API_AUTH); "
                             "with --listen, --host or --share, --auth or --api-auth is required")
    parser.add_argument("--api-auth-file", type=Path, default=None, help="file of user:pass lines for the API")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument("--hosted-demo", action="store_true",
                        help="a public demo (Hugging Face Spaces): the UI needs no login, the API needs --api-auth "
                             "(else it is off), extensions are locked; app.py sets this when SPACE_ID is set")
    parser.add_argument("--batch-root", action="append", type=Path, default=[], metavar="DIR",
                        help="a folder batch jobs may read images from when the studio listens beyond this machine "
                             "(besides outputs/); repeatable. The local operator may always name any folder")
    parser.add_argument("--queue-size", type=positive_int, default=16,
                        help="jobs that may wait or run at once (all users); beyond it: 'queue full, try again' (503)")
    parser.add_argument("--upload-quota-mb", type=positive_int, default=256,
                        help="on a shared server (--listen/--share/a Space): MB of UI uploads one visitor may make "
                             "within --upload-max-age seconds (413 beyond)")
    parser.add_argument("--upload-total-mb", type=positive_int, default=2048,
                        help="on a shared server: MB of UI uploads everyone together may make within the window, and "
                             "the most Gradio's upload cache holds (the oldest are swept beyond)")
    parser.add_argument("--upload-max-age", type=positive_int, default=3600,
                        help="seconds an upload counts against the quotas and stays in Gradio's upload cache")
    parser.add_argument("--queue-per-user", type=positive_int, default=4,
                        help="jobs one user (login, browser tab or API client) may have waiting or running at once; "
                             "beyond it: 429. Another user is always admitted while the queue holds fewer than "
                             "--queue-size jobs of others")
    parser.add_argument("--admin-interrupt", action="store_true",
                        help="Interrupt/Skip (UI and API) stop whoever's job is running, as in A1111; "
                             "by default they act on the caller's own jobs only")
    parser.add_argument("--enable-insecure-extension-access", action="store_true",
                        help="allow enabling/disabling extensions from the UI even with --listen, --host or --share")


def settings_from_args(args: argparse.Namespace) -> Settings:
    host = args.host if getattr(args, "host", None) else ("0.0.0.0" if getattr(args, "listen", False) else "127.0.0.1")
    return Settings(
        models_dir=args.models_dir,
        outputs_dir=args.outputs_dir,
        extensions_dir=args.extensions_dir,
        styles_file=args.styles_file,
        model=getattr(args, "settings_model", None),
        device=args.device,
        dtype=args.dtype,
        allow_pickle=args.allow_pickle,
        allow_hub=args.allow_hub,
        safe_mode=args.safe_mode,
        threads=args.threads,
        compile=getattr(args, "compile", False),
        backend=getattr(args, "backend", "auto"),
        medvram=getattr(args, "medvram", False),
        lowvram=getattr(args, "lowvram", False),
        live_preview_every=getattr(args, "live_preview_every", 5),
        live_preview_method=getattr(args, "live_preview_method", "Approx cheap"),
        host=host,
        port=getattr(args, "port", 7860),
        share=getattr(args, "share", False),
        auth=credentials(args, "auth", "STUDIO_AUTH"),
        open_browser=not getattr(args, "no_browser", True),
        api=getattr(args, "api", True),
        api_auth=credentials(args, "api_auth", "STUDIO_API_AUTH"),
        enable_insecure_extension_access=getattr(args, "enable_insecure_extension_access", False),
        hosted_demo=getattr(args, "hosted_demo", False),
        batch_roots=tuple(path.expanduser().absolute() for path in getattr(args, "batch_root", []) or ()),
        queue_size=getattr(args, "queue_size", 16),
        queue_per_user=getattr(args, "queue_per_user", 4),
        admin_interrupt=getattr(args, "admin_interrupt", False),
        upload_quota_mb=getattr(args, "upload_quota_mb", 256),
        upload_total_mb=getattr(args, "upload_total_mb", 2048),
        upload_max_age=getattr(args, "upload_max_age", 3600),
        control_net_unit_count=getattr(args, "control_net_unit_count", 3),
    )


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def unit_count(value: str) -> int:
    number = positive_int(value)
    if number > MAX_CONTROL_UNITS:
        raise argparse.ArgumentTypeError(f"must be {MAX_CONTROL_UNITS} or fewer")
    return number


def credentials(args: argparse.Namespace, name: str, env: str) -> Credentials | tuple[Credentials, ...] | None:
    """--<name> and --<name>-file together; else the environment variable `env` (keeps passwords
    out of /proc/<pid>/cmdline). One user gives (user, password); several, a tuple of those."""
    flag = "--" + name.replace("_", "-")
    pairs = parse_auth_list(getattr(args, name, None), flag)
    path = getattr(args, f"{name}_file", None)
    if path is not None:
        pairs += read_auth_file(Path(path), f"{flag}-file")
    if not pairs and os.environ.get(env):
        pairs = parse_auth_list(os.environ[env], env)
    if not pairs:
        return None
    return pairs[0] if len(pairs) == 1 else tuple(pairs)


def parse_auth(value: str | None, flag: str = "--auth") -> Credentials | None:
    """One user:password (kept for callers that take a single pair)."""
    pairs = parse_auth_list(value, flag)
    return pairs[0] if pairs else None


def parse_auth_list(value: str | None, flag: str = "--auth") -> list[Credentials]:
    """A1111's form: user:password, several separated by commas; empty passwords are refused."""
    pairs = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user.strip():
            raise SystemExit(f"{flag} must look like user:password (several: u1:p1,u2:p2)")
        if not password:
            raise SystemExit(f"{flag}: user {user!r} has an empty password; give a password")
        pairs.append((user.strip(), password))
    return pairs


def read_auth_file(path: Path, flag: str) -> list[Credentials]:
    """user:password per line (commas allowed too), as A1111's --gradio-auth-path."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SystemExit(f"{flag}: cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    pairs = [pair for line in text.splitlines() for pair in parse_auth_list(line, f"{flag} {path}")]
    if not pairs:
        raise SystemExit(f"{flag}: {path} holds no user:password line")
    return pairs
