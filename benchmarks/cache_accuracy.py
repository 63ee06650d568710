"""Step caching's accuracy cost on the default model's evaluation (held-out prompts, Euler, 20 steps).

    python -m benchmarks.cache_accuracy [--prompts 24] [--intervals 1 2 3]
"""
from __future__ import annotations

import argparse
import json

from studio.default_model import evaluate
from studio.generation.stepcache import step_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--intervals", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    pipe, _ = evaluate.load()
    specs = evaluate.eval_prompts(args.prompts, seen=evaluate.training_captions(evaluate.TRAIN_SAMPLE[0], 2000))
    results = {}
    for interval in args.intervals:
        with step_cache(pipe, interval):
            results[f"cache every {interval}"] = evaluate.prompt_accuracy(pipe, specs, "Euler")
        print(interval, results[f"cache every {interval}"], flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
