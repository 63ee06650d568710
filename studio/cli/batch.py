"""Command line for folder batches:

    python -m studio img2img-batch --input-dir IN --output-dir OUT [--mask-dir MASKS] [request flags]
    python -m studio extras-batch --input-dir IN --output-dir OUT [--upscaler-1 Lanczos --upscaling-resize 2 ...]

The shell user is the local operator: relative folders are relative to the working directory.
Each prints the saved paths, one a line; skipped inputs are notes on stderr.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from studio.settings import Settings

EXTRAS_SKIP = ("gfpgan_visibility", "codeformer_visibility", "codeformer_weight")


def add_folder_flags(parser: argparse.ArgumentParser, mask: bool = False) -> None:
    parser.add_argument("--input-dir", type=Path, required=True, help="folder of images to process")
    parser.add_argument("--output-dir", type=Path, default=None, help="where to save (default: outputs/...)")
    if mask:
        parser.add_argument("--mask-dir", type=Path, default=None,
                            help="inpaint: masks named as the images (one mask: used for every image)")


def add_extras_flags(parser: argparse.ArgumentParser) -> None:
    from studio.generation.extras_request import ExtrasRequest

    for item in fields(ExtrasRequest):
        if item.name in EXTRAS_SKIP:
            continue
        flag = "--" + item.name.replace("_", "-")
        if item.type in (bool, "bool"):
            parser.add_argument(flag, dest=item.name, action=argparse.BooleanOptionalAction, default=item.default,
                                help=f"A1111's {item.name} (default: {'on' if item.default else 'off'})")
        else:
            kind = {"int": int, "float": float}.get(str(item.type), str)
            parser.add_argument(flag, dest=item.name, type=kind, default=item.default, help=f"default: {item.default}")


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else path.expanduser().absolute()


def run_img2img_batch(args: argparse.Namespace, settings: Settings) -> int:
    from studio.cli.request_flags import request_from_args

    def job(services):  # type: ignore[no-untyped-def]
        request = request_from_args(args)
        return services.generation.img2img_batch(request, _absolute(args.input_dir), _absolute(args.output_dir),
                                                 _absolute(args.mask_dir))

    return _run(settings, job)


def run_extras_batch(args: argparse.Namespace, settings: Settings) -> int:
    from studio.generation.extras_request import ExtrasRequest

    values = {item.name: getattr(args, item.name) for item in fields(ExtrasRequest) if hasattr(args, item.name)}
    return _run(settings, lambda services: services.extras.folder(values, _absolute(args.input_dir),
                                                                  _absolute(args.output_dir)))


def _run(settings: Settings, job) -> int:  # type: ignore[no-untyped-def]
    from studio.checkpoints.devices import configure_threads
    from studio.errors import StudioError, UnknownSamplerError
    from studio.service.container import build_services
    from studio.service.shutdown import ServiceJobs, install_shutdown_handler

    configure_threads(settings.threads)
    services = build_services(settings)
    install_shutdown_handler(ServiceJobs(services.generation))
    try:
        result = job(services)
    except (ValueError, StudioError, UnknownSamplerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for path in result.paths:
        print(path)
    if result.interrupted:
        print(f"note: interrupted; {len(result.paths)} image(s) finished and kept", file=sys.stderr)
    return 1 if result.interrupted else 0
