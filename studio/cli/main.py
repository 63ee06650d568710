"""Command line: `python -m studio [serve] | generate | samplers | models`.

`generate` takes every GenerationRequest field as a flag of the same name (underscores become
hyphens), so every mode the request grows is reachable from the shell without new code here.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Sequence

from studio.cluster.options import add_cluster_flags, cluster_options
from studio.request import GenerationRequest, RequestError
from studio.settings import Credentials, Settings

# Extra spellings users know from A1111's UI and scripts.
FLAG_ALIASES = {"sampler_name": ["--sampler"], "n_iter": ["--batch-count"], "init_image": ["--init-images"]}
COMMANDS = ("serve", "generate", "samplers", "models", "networks", "img2img-batch", "extras-batch")


def add_settings_flags(parser: argparse.ArgumentParser, with_model: bool = True) -> None:
    defaults = Settings()
    parser.add_argument("--models-dir", type=Path, default=defaults.models_dir, help="folder laid out as A1111's models/")
    parser.add_argument("--outputs-dir", type=Path, default=defaults.outputs_dir, help="where images are saved")
    parser.add_argument("--extensions-dir", type=Path, default=defaults.extensions_dir)
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
    parser.add_argument("--medvram", action="store_true",
                        help="CUDA: keep each model (text encoder, UNet, VAE) in CPU RAM until it runs (less VRAM)")
    parser.add_argument("--lowvram", action="store_true",
                        help="CUDA: move every layer to the GPU only while it runs (least VRAM, slow)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: physical cores; fewer when other work shares the CPU)")


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", action="store_true", help="listen on all interfaces (0.0.0.0)")
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
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
        admin_interrupt=getattr(args, "admin_interrupt", False),
    )


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
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


def _image_path(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no image file at {value}")
    return path


def _inpainting_fill(value: str) -> int:
    """Accept A1111's names (fill, original, latent noise, latent nothing) or their index."""
    from studio.request import INPAINTING_FILLS

    if value.isdigit() and int(value) < len(INPAINTING_FILLS):
        return int(value)
    if value in INPAINTING_FILLS:
        return INPAINTING_FILLS.index(value)
    raise argparse.ArgumentTypeError(f"choose one of: {', '.join(INPAINTING_FILLS)}")


# Flags whose command-line form differs from the field's Python type.
FLAG_TYPES: dict[str, Any] = {"inpainting_fill": _inpainting_fill}


def _field_type(annotation: Any) -> Any:
    text = str(annotation)
    if "Image" in text:
        return _image_path
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if text.split("|")[0].strip() == name:
            return kind
    return str


# Fields with a richer command-line form than one flag of their own type.
CUSTOM_FIELDS = ("controlnet_units",)


def add_request_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per GenerationRequest field; unset flags keep the dataclass default."""
    for item in fields(GenerationRequest):
        if item.name in CUSTOM_FIELDS:
            continue
        flags = ["--" + item.name.replace("_", "-"), *FLAG_ALIASES.get(item.name, [])]
        kind = FLAG_TYPES.get(item.name) or _field_type(item.type)
        default = item.default if item.default is not MISSING else None
        # Unset flags stay absent, so a --preset can fill them and explicit flags still win.
        if kind is bool:
            parser.add_argument(*flags, dest=item.name, action="store_true", default=argparse.SUPPRESS)
        elif str(item.type).startswith("tuple[str"):  # e.g. --styles "Photograph" "Quality"
            parser.add_argument(*flags, dest=item.name, nargs="+", default=argparse.SUPPRESS, help="one or more names")
        else:
            parser.add_argument(*flags, dest=item.name, type=kind, default=argparse.SUPPRESS, help=f"default: {default}")
    parser.add_argument("--preset", default=None, help="a preset from presets/ (its fields, then your flags)")


def add_controlnet_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--controlnet", action="append", default=[], metavar="SPEC",
                        help='a ControlNet unit, repeatable: "type=canny,image=PATH,weight=1.0,start=0,end=1,'
                             'mode=balanced,preprocess=on" (also model=, module=, low=, high=, resize=, pixel_perfect=)')
    parser.add_argument("--pose-json", type=Path, default=None,
                        help="OpenPose JSON used as the pose unit's image (adds a pose unit if none is given)")


def request_from_args(args: argparse.Namespace) -> GenerationRequest:
    """Flags by field name; image fields arrive as paths and are opened here."""
    from PIL import Image

    from studio.cli.control import units_from_args
    from studio.service.presets import load_presets

    values: dict[str, Any] = {}
    if args.preset:
        presets = load_presets()
        if args.preset not in presets:
            raise RequestError(f"unknown preset {args.preset!r}; available: {', '.join(presets)}")
        values.update(presets[args.preset])
    values.update({item.name: getattr(args, item.name) for item in fields(GenerationRequest)
                   if item.name not in CUSTOM_FIELDS and hasattr(args, item.name)})
    values["controlnet_units"] = units_from_args(args.controlnet, args.pose_json)
    for name, value in values.items():
        if isinstance(value, list) and name != "controlnet_units":
            values[name] = tuple(value)
        if isinstance(value, Path):
            with Image.open(value) as opened:
                values[name] = opened.copy()
    return GenerationRequest(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio", description="Diffusion Studio")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="start the browser studio (the default)")
    add_settings_flags(serve)
    add_serve_flags(serve)
    add_cluster_flags(serve)
    generate = sub.add_parser("generate", help="generate images and print their paths")
    add_settings_flags(generate, with_model=False)
    add_request_flags(generate)
    add_controlnet_flags(generate)
    generate.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: outputs/txt2img-images/<date>/)")
    generate.add_argument("--script-name", default=None,
                          help='run a script, as the API\'s script_name: "Prompts from file or textbox", "Prompt matrix", '
                               '"X/Y/Z plot"')
    generate.add_argument("--script-args", default="[]", help="the script's A1111 script_args as a JSON list")
    from studio.cli.batch import add_extras_flags, add_folder_flags

    img2img_batch = sub.add_parser("img2img-batch", help="img2img (inpaint with --mask-dir) over a folder of images")
    add_settings_flags(img2img_batch, with_model=False)
    add_request_flags(img2img_batch)
    add_controlnet_flags(img2img_batch)
    add_folder_flags(img2img_batch, mask=True)
    extras_batch = sub.add_parser("extras-batch", help="upscale a folder of images (Extras)")
    add_settings_flags(extras_batch)
    add_folder_flags(extras_batch)
    add_extras_flags(extras_batch)
    for name in ("samplers", "models", "networks"):
        listing = sub.add_parser(name, help=f"list the {name}")
        add_settings_flags(listing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    from studio.cli.batch import run_extras_batch, run_img2img_batch

    return {"serve": run_serve, "generate": run_generate, "samplers": run_samplers, "models": run_models,
            "networks": run_networks, "img2img-batch": run_img2img_batch,
            "extras-batch": run_extras_batch}[args.command](args, settings)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from studio.cli.serve import serve
    from studio.errors import StudioError

    try:
        cluster = cluster_options(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if cluster is not None:
            return serve_on_ray(settings, cluster)
        serve(settings)
    except StudioError as error:  # e.g. an open API on a public address, a model that won't load
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # Gradio / uvicorn at start-up (port taken, localhost check): one line
        print(f"error: the server could not start: {start_failure(error)}", file=sys.stderr)
        if os.environ.get("STUDIO_DEBUG"):
            raise
        return 2
    return 0


def serve_on_ray(settings: Settings, cluster: Any) -> int:
    """`serve --replicas N`: the engine on Ray Serve replicas (the optional `cluster` extra)."""
    try:
        from studio.cluster.launch import serve_cluster
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "ray":
            print('error: --replicas needs Ray Serve: pip install -e ".[cluster]"', file=sys.stderr)
            return 2
        raise
    serve_cluster(settings, cluster)
    return 0


def start_failure(error: BaseException) -> str:
    """One line for a start-up failure, with a hint for the ones we know."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "localhost is not accessible" in text:
        return ("the server did not answer Gradio's check of its own address in time (a very busy machine, or "
                "an HTTP proxy intercepting localhost: set NO_PROXY=localhost,127.0.0.1). Set STUDIO_DEBUG=1 "
                "for the traceback.")
    return f"{type(error).__name__}: {text} (set STUDIO_DEBUG=1 for the traceback)"


def run_generate(args: argparse.Namespace, settings: Settings) -> int:
    from studio.checkpoints.devices import configure_threads
    from studio.errors import StudioError
    from studio.service.shutdown import install_shutdown_handler
    from studio.service.studio import Studio

    configure_threads(settings.threads)
    studio = Studio.create(settings)  # extensions' samplers and hooks apply here too
    install_shutdown_handler(studio.engine)  # SIGTERM mid-run: the images finished so far are kept
    try:
        request = request_from_args(args)
        if settings.allow_hub and request.model:  # the command line is trusted to name a Hub id
            studio.engine.load_model(request.model, allow_hub=True)
        if args.script_name:  # as the API's script_name / script_args; images go where the script saves them
            result = studio.run_script(request, args.script_name, _script_args(args.script_args))
        else:
            result = studio.submit(request, directory=args.out)
    except (ValueError, StudioError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    for image in result.images:
        print(image.path)
    if result.interrupted:
        print(f"note: interrupted; {len(result.images)} image(s) finished and kept", file=sys.stderr)
    return 1 if result.interrupted else 0


def _script_args(text: str) -> list[Any]:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RequestError(f"--script-args must be a JSON list ({error.msg})") from None
    if not isinstance(value, list):
        raise RequestError("--script-args must be a JSON list, e.g. '[false, false, \"start\", \"a cat\"]'")
    return value


def run_samplers(args: argparse.Namespace, settings: Settings) -> int:
    """The core samplers and the extensions' ones: only the registries are imported (no engine,
    pipelines or UI: a listing should cost little CPU, also on a busy machine)."""
    from studio.service.extensions import ExtensionManager

    for name, spec in ExtensionManager(settings).load_all().samplers.items():
        options = ", ".join(f"{k}={v}" for k, v in spec.kwargs.items())
        print(f"{name}\t{spec.scheduler.__name__}" + (f"({options})" if options else ""))
    return 0


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    from studio.checkpoints.manager import discover_models

    for entry in discover_models(settings):
        print(f"{entry.title}\t{entry.kind}\t{entry.location}")
    return 0


def run_networks(args: argparse.Namespace, settings: Settings) -> int:
    """LoRAs (use as <lora:name:1>), embeddings (use by name) and VAEs (--vae name) found in models/."""
    from studio.networks import discovery

    for kind, entries in (("lora", discovery.discover_loras(settings)),
                          ("embedding", discovery.discover_embeddings(settings)),
                          ("vae", discovery.discover_vaes(settings))):
        for entry in entries:
            print(f"{kind}\t{entry.name}\t{entry.path}")
    return 0
