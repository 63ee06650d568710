"""Step caching (DeepCache): reuse the UNet's deep features between refresh steps.

On a refresh step the whole UNet runs and the output of its deep blocks is kept; on the
`interval - 1` steps after it only the shallow first/last blocks run, over the cached deep
features. Wraps the `DeepCache` package (Ma et al., "DeepCache: Accelerating Diffusion Models
for Free"), attached to a pipeline for one call and removed afterwards, so the shared UNet of
the other mode pipelines is untouched.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CACHE_CHOICES = {"off": 1, "every 2": 2, "every 3": 3}


@contextmanager
def step_cache(pipe: Any, interval: int) -> Iterator[None]:
    """Within the block, `pipe`'s UNet recomputes its deep blocks every `interval` steps (1: always)."""
    if interval <= 1:
        yield
        return
    from DeepCache import DeepCacheSDHelper  # imported on first use only

    helper = DeepCacheSDHelper(pipe=pipe)
    # Branch 0: everything below the first down block's first layer is cached (the paper's setting).
    helper.set_params(cache_interval=interval, cache_branch_id=0)
    helper.enable()
    try:
        yield
    finally:
        helper.disable()
