"""Follow one txt2img request from the generation service's submit to the saved PNG: which studio
modules it passes through, and how often a call climbs back up a layer (a lower layer calling into
a higher one: callbacks, or a module reaching above itself).

    python -m benchmarks.request_path            # this tree
    python -m benchmarks.request_path --old      # a tree from before the layout (Studio.create(...).submit)

Layers are those of .importlinter; an old flat module is placed by the folder it moved to.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable

# .importlinter's layers, top to bottom (higher number: higher layer).
LAYERS = {
    "cli": 9, "cluster": 8, "default_model": 8, "web": 7, "ui": 7, "service": 6, "api": 6, "records": 5,
    "generation": 4, "prompting": 3, "networks": 3, "control": 3, "checkpoints": 2, "request": 1.5, "images": 1.2,
    "settings": 1, "errors": 1,
}
# Where the flat modules of the old layout went (the architecture issue's move).
OLD_HOMES = {
    "engine": "generation", "modes": "generation", "latents": "generation", "variation": "generation",
    "hires": "generation", "refiner": "generation", "outpaint": "generation", "stepcache": "generation",
    "vae_guard": "generation", "previews": "generation", "imageops": "generation", "samplers": "generation",
    "extras": "generation", "prompts": "prompting", "styles": "prompting", "models": "checkpoints",
    "single_file": "checkpoints", "checkpoint_io": "checkpoints", "parameterization": "checkpoints",
    "hashcache": "checkpoints", "hardware": "checkpoints", "offload": "checkpoints", "compilation": "checkpoints",
    "upscalers": "checkpoints", "clip_vocab": "checkpoints", "sizes": "checkpoints", "infotext": "records",
    "pnginfo": "records", "storage": "records", "history": "records", "reproduce": "records", "service": "service",
    "facade": "service", "jobs": "service", "queue": "service", "users": "service", "batch": "service",
    "folders": "service", "scripts": "service", "zerogpu": "service", "shutdown": "service", "extensions": "service",
    "presets": "service", "cli": "cli", "batch_cli": "cli", "control_cli": "cli", "server": "cli", "spaces": "cli",
}


def layer_of(module: str) -> float:
    parts = module.split(".")
    if len(parts) < 2:
        return 0.0
    name = parts[1]
    return LAYERS.get(name, LAYERS.get(OLD_HOMES.get(name, ""), 0.0))


def trace(call: Callable[[], Any]) -> tuple[list[str], Counter, Counter]:
    """Studio modules in the order first entered, (caller, callee) module pairs that climb up, and
    how often each module is entered from another studio module."""
    seen: dict[str, None] = {}
    climbs: Counter = Counter()
    entries: Counter = Counter()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        if not callee.startswith("studio."):
            return
        seen.setdefault(callee)
        back = frame.f_back
        caller = back.f_globals.get("__name__", "") if back is not None else ""
        if caller.startswith("studio.") and caller != callee:
            entries[callee] += 1
            if layer_of(callee) > layer_of(caller):
                climbs[(caller, callee)] += 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return list(seen), climbs, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", action="store_true", help="the tree uses Studio.create(settings).submit")
    args = parser.parse_args()
    from studio.request import GenerationRequest
    from studio.settings import Settings

    root = Path(tempfile.mkdtemp(prefix="request-path-"))
    settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", extensions_dir=root / "none",
                        cache_dir=root / "cache", styles_file=root / "styles.csv")
    request = GenerationRequest(prompt="a red circle on a blue background", steps=2, width=64, height=64, seed=1,
                                sampler_name="Euler")
    if args.old:
        from studio.service import Studio  # type: ignore[attr-defined]

        submit = Studio.create(settings).submit
    else:
        from studio.service.container import build_services

        submit = build_services(settings).generation.submit
    submit(request)  # warm: the model loads outside the traced request
    modules, climbs, entries = trace(lambda: submit(request))
    engine = next(name for name in entries if name.endswith(".engine"))
    print(json.dumps({"modules": len(modules), "climbs": sum(climbs.values()), "distinct_climbs": len(climbs),
                      "engine_entries": entries[engine], "most_entered": entries.most_common(5),
                      "path": modules, "climbing": [f"{a} -> {b} x{n}" for (a, b), n in climbs.most_common()]},
                     indent=1))


if __name__ == "__main__":
    main()
