"""Extra-network tags (`<lora:name:0.8>`, `<hypernet:...>`): found and stripped before the text is encoded.

The pattern is A1111's `extra_networks.re_extra_net`. Who applies a tag (LoRA loading) is not this
module's business: it only hands the tags over and returns the text without them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")


@dataclass(frozen=True)
class NetworkTag:
    kind: str  # "lora", "lyco", "hypernet", ...
    args: tuple[str, ...]  # the colon-separated values: name, weights

    @property
    def text(self) -> str:
        return f"<{self.kind}:{':'.join(self.args)}>"


def split_network_tags(prompt: str) -> tuple[str, tuple[NetworkTag, ...]]:
    """(prompt without its network tags, the tags in order)."""
    tags = tuple(NetworkTag(m.group(1), tuple(m.group(2).split(":"))) for m in NETWORK_TAG.finditer(prompt))
    return NETWORK_TAG.sub("", prompt), tags
