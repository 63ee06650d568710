"""Speed measurements on the embedded default model, written to benchmarks/results.json.

Run: HF_HUB_OFFLINE=1 python benchmarks/run.py   (takes about a minute on 2 CPU cores)
Targets (issues 2, 4, 5): one 64x64 txt2img generation at 20 steps < 5 s; mode switches reuse
the loaded weights (cached pipeline switch ~0 s).
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Callable

import torch
from PIL import Image, ImageDraw

from studio.engine import Engine
from studio.hardware import configure_threads
from studio.models import ModelManager
from studio.request import ControlUnit, GenerationRequest
from studio.settings import Settings

HERE = Path(__file__).resolve().parent


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return round(statistics.median(runs), 3)


def scene() -> Image.Image:
    image = Image.new("RGB", (64, 64), (40, 60, 200))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(220, 30, 30))
    return image


def cold_start_seconds(root: Path) -> float:
    """From `python app.py --no-browser` to a served UI page."""
    port = 7959
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(HERE.parent / "app.py"), "--no-browser", "--port", str(port),
                                "--outputs-dir", str(root / "outputs")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                return round(time.perf_counter() - start, 2)
            except OSError:
                if time.perf_counter() - start > 300:
                    raise TimeoutError("the UI did not come up")
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    configure_threads()
    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(models_dir=root / "models", outputs_dir=root / "outputs", cache_dir=root / "cache")
        models = ModelManager(settings)
        start = time.perf_counter()
        models.current()
        load = round(time.perf_counter() - start, 3)
        engine = Engine(models)
        txt = GenerationRequest(prompt="a red circle on a blue background", steps=20, seed=1)
        img = txt.replace(init_image=scene(), denoising_strength=0.75)
        mask = Image.new("L", (64, 64))
        ImageDraw.Draw(mask).rectangle((16, 16, 48, 48), fill=255)
        inp = img.replace(mask=mask)
        canny = ControlUnit(control_type="canny", image=scene(), module="canny")
        model = models.current()
        engine.run(txt.replace(steps=1))  # warm-up
        first_switch = timed(lambda: engine.run(img.replace(steps=1)), repeat=1)  # builds the img2img pipeline
        cached_switch = timed(lambda: engine.pipeline_for(model, "img2img"), repeat=5)
        results = {
            "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
            "model_load_s": load,
            "txt2img_20_steps_s": timed(lambda: engine.run(txt)),
            "img2img_20_steps_strength_0.75_s": timed(lambda: engine.run(img)),
            "inpaint_20_steps_s": timed(lambda: engine.run(inp)),
            "first_img2img_run_1_step_including_pipeline_build_s": first_switch,
            "cached_mode_pipeline_lookup_s": cached_switch,
            "txt2img_1_controlnet_unit_s": timed(lambda: engine.run(txt.replace(controlnet_units=(canny,)))),
            "txt2img_3_controlnet_units_s": timed(lambda: engine.run(txt.replace(controlnet_units=(canny,) * 3))),
            "cold_start_to_served_ui_s": cold_start_seconds(root),
        }
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
