"""`generate` flags: every GenerationRequest field as a flag of the same name (underscores become
hyphens), presets and ControlNet units; turned into a request."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from studio.request import GenerationRequest, RequestError

# Extra spellings users know from A1111's UI and scripts.
FLAG_ALIASES = {"sampler_name": ["--sampler"], "n_iter": ["--batch-count"], "init_image": ["--init-images"]}


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
            parser.add_argument(*flags, dest=item.name, action="store_true", default=argparse.SUPPRESS,
                                help=f"turn on A1111's {item.name} (default: off)")
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
