"""A1111's extra-network tags in prompts: `<lora:name:te:unet>`, `<lyco:...>`, `<hypernet:...>`.

A1111 (extra_networks.py) finds `<kind:arg:arg...>` with `<(\\w+):([^>]+)>`, splits the arguments
on ":" (an argument `key=value` is named), and removes every tag from the prompt before encoding.
For LoRA the first number is the text-encoder multiplier, the second the UNet multiplier (it
defaults to the first): `<lora:name:0.8>` is 0.8 for both, `<lora:name:1:0.5>` is te 1, unet 0.5;
`te=` and `unet=` name them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from studio.request import RequestError

TAG = re.compile(r"<(\w+):([^>]+)>")
LORA_KINDS = ("lora", "lyco")  # A1111 >= 1.5 treats <lyco:...> as <lora:...>


@dataclass(frozen=True)
class NetworkTag:
    kind: str  # "lora" (also for <lyco:>), or another kind A1111 knows (hypernet ...)
    name: str
    te_weight: float = 1.0
    unet_weight: float = 1.0
    text: str = ""  # the tag as written

    @property
    def active(self) -> bool:
        """A tag with both weights 0 changes nothing (and is not applied at all)."""
        return self.te_weight != 0 or self.unet_weight != 0


def extract_network_tags(prompt: str) -> tuple[str, list[NetworkTag]]:
    """The prompt without its tags (as A1111 encodes it) and the tags in order of appearance."""
    tags = [_parse(match) for match in TAG.finditer(prompt)]
    return TAG.sub("", prompt), tags


def _parse(match: re.Match[str]) -> NetworkTag:
    kind, text = match.group(1).lower(), match.group(0)
    positional = [part for part in match.group(2).split(":") if "=" not in part]
    named = dict(part.split("=", 1) for part in match.group(2).split(":") if "=" in part)
    if not positional or not positional[0].strip():
        raise RequestError(f"prompt tag {text} names no network")
    te = _number(positional[1], text) if len(positional) > 1 else 1.0
    te = _number(named["te"], text) if "te" in named else te
    unet = _number(positional[2], text) if len(positional) > 2 else te
    unet = _number(named["unet"], text) if "unet" in named else unet
    return NetworkTag("lora" if kind in LORA_KINDS else kind, positional[0].strip(), te, unet, text)


def _number(value: str, tag: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise RequestError(f"prompt tag {tag}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise RequestError(f"prompt tag {tag}: the weight must be a finite number")
    return number
