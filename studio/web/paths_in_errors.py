"""Error texts name files relative to their folder (the pure functions live in studio.errors, below
both edges, so that the UI's messages use them too; issue 22 §20)."""
from __future__ import annotations

from studio.errors import ABSOLUTE, folder_names, relative_paths

__all__ = ["ABSOLUTE", "folder_names", "relative_paths"]
