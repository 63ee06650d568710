"""Command line: `python -m studio [serve] | generate | samplers | models`.

`generate` takes every GenerationRequest field as a flag of the same name (underscores become
hyphens), so every mode the request grows is reachable from the shell without new code here.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from studio.cli.request_flags import add_controlnet_flags, add_request_flags, request_from_args
from studio.cli.settings_flags import add_serve_flags, add_settings_flags, settings_from_args
from studio.cluster.options import add_cluster_flags, cluster_options
from studio.request import RequestError
from studio.settings import Settings

COMMANDS = ("serve", "generate", "samplers", "models", "networks", "img2img-batch", "extras-batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m studio", description="Diffusion Studio", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="With no command, serve runs: `python -m studio --port 7861` is `python -m studio serve --port 7861`.\n"
               "Each command lists its flags:\n  python -m studio serve --help\n  python -m studio generate --help")
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
        from studio.cli.serve_cluster import serve_cluster
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
    from studio.errors import StudioError, UnknownSamplerError
    from studio.service.container import build_services
    from studio.service.shutdown import ServiceJobs, install_shutdown_handler

    configure_threads(settings.threads)
    services = build_services(settings)  # extensions' samplers and hooks apply here too
    install_shutdown_handler(ServiceJobs(services.generation))  # SIGTERM mid-run: the images finished so far are kept
    try:
        request = request_from_args(args)
        services.models.resolve_sampler(request.sampler_name)  # a typo is refused before the model loads
        if settings.allow_hub and request.model:  # the command line is trusted to name a Hub id
            services.models.load(request.model, allow_hub=True)
        if args.script_name:  # as the API's script_name / script_args; --out takes every image, the grid too
            result = services.extensions.run_script(request, args.script_name, _script_args(args.script_args),
                                                    directory=args.out)
        else:
            result = services.generation.submit(request, directory=args.out)
    except (ValueError, StudioError, UnknownSamplerError) as error:  # bad input: one line, exit 2
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
    from studio.service.extensions.manager import ExtensionManager

    for name, spec in ExtensionManager(settings).load_all().samplers.items():
        options = ", ".join(f"{k}={v}" for k, v in spec.kwargs.items())
        print(f"{name}\t{spec.scheduler.__name__}" + (f"({options})" if options else ""))
    return 0


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    from studio.checkpoints.catalog import discover_models

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
