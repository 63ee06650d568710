"""Hires fix and Extras timings, written to benchmarks/upscale_results.json.

Run: HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/upscale.py   (a few minutes on 2 CPU cores)
- txt2img 64x64 at 20 steps, then with hires fix 2x (-> 128x128; 20 hires steps at denoising 0.7 = 14 run)
  with the Latent and the Lanczos upscalers;
- Extras 4x of a 256x256 image (-> 1024x1024) with Lanczos, a tiny random ESRGAN (8 filters, 1 block)
  and a random ESRGAN the size of RealESRGAN_x4plus_anime_6B (64 filters, 6 blocks), tiled 192 px.
Random weights: the speed is the architecture's, the pixels mean nothing.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.checkpoints.devices import configure_threads  # noqa: E402
from studio.checkpoints.manager import ModelManager  # noqa: E402
from studio.generation.engine import Engine  # noqa: E402
from studio.generation.extras_request import ExtrasRequest
from studio.request import GenerationRequest  # noqa: E402
from studio.settings import Settings  # noqa: E402
from tests.support.esrgan import write_esrgan  # noqa: E402

HERE = Path(__file__).resolve().parent


def seconds(fn) -> float:
    fn()  # warm-up (pipeline build, model load)
    start = time.perf_counter()
    fn()
    return round(time.perf_counter() - start, 3)


def main() -> None:
    configure_threads()
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_esrgan(root / "models" / "ESRGAN", "tiny-esrgan-4x")
        write_esrgan(root / "models" / "ESRGAN", "esrgan-4x-64nf-6nb", nf=64, nb=6)
        settings = Settings(models_dir=root / "models", outputs_dir=root / "out", cache_dir=root / "cache")
        models = ModelManager(settings)
        models.current()
        engine = Engine(models)
        base = GenerationRequest(prompt="a red circle on a blue background", steps=20, width=64, height=64, seed=1)
        results = {"machine": {"threads": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 1)},
                   "txt2img_64_20_steps_s": seconds(lambda: engine.run(base))}
        for upscaler in ("Latent", "Lanczos"):
            hires = base.replace(enable_hr=True, hr_scale=2.0, hr_upscaler=upscaler, denoising_strength=0.7)
            results[f"hires_2x_64_to_128_{upscaler}_s"] = seconds(lambda: engine.run(hires))
        image = Image.effect_mandelbrot((256, 256), (-2, -1.5, 1, 1.5), 100).convert("RGB")
        for upscaler in ("Lanczos", "tiny-esrgan-4x", "esrgan-4x-64nf-6nb"):
            request = ExtrasRequest(upscaler_1=upscaler, upscaling_resize=4)
            results[f"extras_4x_256_to_1024_{upscaler}_s"] = seconds(lambda: engine.run_extras([image], request))
    (HERE / "upscale_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
