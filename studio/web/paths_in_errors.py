"""Error texts name files relative to their folder, never by the server's absolute path.

A message from the core may carry a path (a model that failed to load, an output folder that
could not be written, an OSError's filename). Before it leaves the server, each known folder's
absolute path becomes its short name (`/srv/studio/models/Lora/x.safetensors` → `models/Lora/x.safetensors`)
and any other absolute path is cut to its last part (`…/x.png`)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

ABSOLUTE = re.compile(r"(?<![\w.~/])/(?:[^\s'\"`:,;()<>\[\]{}]+/)+([^\s'\"`:,;()<>\[\]{}/]*)")


def folder_names(folders: Mapping[str, Path]) -> tuple[tuple[str, str], ...]:
    """(absolute prefix, short name) for each folder, as given and resolved, longest first."""
    pairs = set()
    for name, folder in folders.items():
        for form in (Path(folder).absolute(), Path(folder).resolve()):
            pairs.add((str(form).rstrip("/"), name))
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0])))


def relative_paths(message: str, folders: tuple[tuple[str, str], ...]) -> str:
    for prefix, name in folders:
        message = message.replace(prefix + "/", name + "/").replace(prefix, name)
    return ABSOLUTE.sub(lambda found: "…/" + found.group(1), message)
