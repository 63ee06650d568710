"""The embedded default model: a small Stable-Diffusion-architecture model trained on procedural scenes.

``WEIGHTS_DIR`` is the committed diffusers folder (fp16 safetensors) with ControlNets in
``controlnet-canny``, ``controlnet-scribble`` and ``controlnet-pose``.
"""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NATIVE_SIZE = 64
CONTROLNET_DIRS = {kind: WEIGHTS_DIR / f"controlnet-{kind}" for kind in ("canny", "scribble", "pose")}
