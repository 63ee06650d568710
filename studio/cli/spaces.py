"""Running as a Hugging Face Space: the arguments app.py adds when SPACE_ID is set.

A Space is a public demo by design: the UI is open, the A1111 API is served only when the Space
has a STUDIO_API_AUTH secret, outputs go to a temporary folder (a Space's disk is not the user's),
and extensions cannot be toggled (the bind is public).
"""
from __future__ import annotations

import os
import tempfile
from typing import Mapping, Sequence


def space_arguments(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """`serve` arguments for a Space (argv given to app.py still win: they come last)."""
    if not environ.get("SPACE_ID"):
        return list(argv)
    added = ["--listen", "--no-browser", "--hosted-demo",
             "--outputs-dir", os.path.join(tempfile.gettempdir(), "diffusion-studio-outputs")]
    if not environ.get("STUDIO_API_AUTH"):
        added.append("--no-api")
    return [*added, *argv]
