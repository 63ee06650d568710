"""Regression check between two benchmark runs that does not cry wolf (issue 26 §5).

Every figure is a ratio to a baseline timed in the same round (cases interleaved round by round,
so a busy machine slows both alike); a run keeps each round's ratio. A figure regressed when the
median of the new rounds exceeds the old median by more than the threshold, where

    threshold = max(MIN_THRESHOLD, SPREAD_FACTOR * 1.2533 * sqrt(spread_old² / n_old + spread_new² / n_new))

i.e. SPREAD_FACTOR standard errors of the difference of the two medians (a median of n rounds
varies 1.2533·σ/√n), where a run's spread σ is the median absolute deviation of its rounds relative
to their median (scaled to a standard deviation, 1.4826): robust to one round hit by a burst. Figures whose median time is below FLOOR_S seconds
(a preview's 8 ms) are not judged: at that size timer and scheduling noise is the figure.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MIN_THRESHOLD = 0.04  # never flag less than 4 %
SPREAD_FACTOR = 2.5
FLOOR_S = 0.05


@dataclass(frozen=True)
class Figure:
    ratios: Sequence[float]  # one per round: case / baseline, CPU time
    seconds: float  # the case's median CPU seconds (for the floor)


def spread(values: Sequence[float]) -> float:
    centre = statistics.median(values)
    if len(values) < 2 or centre == 0:
        return 0.0
    return 1.4826 * statistics.median(abs(v - centre) for v in values) / abs(centre)


def threshold(old: Sequence[float], new: Sequence[float]) -> float:
    error = 1.2533 * math.sqrt(spread(old) ** 2 / len(old) + spread(new) ** 2 / len(new))
    return max(MIN_THRESHOLD, SPREAD_FACTOR * error)


def regressions(old: Mapping[str, Figure], new: Mapping[str, Figure]) -> list[str]:
    """Figures of `new` worse than in `old` beyond the threshold (lower ratios are better)."""
    found = []
    for key, figure in new.items():
        before = old.get(key)
        if before is None or not before.ratios or not figure.ratios:
            continue
        if min(before.seconds, figure.seconds) < FLOOR_S:
            continue
        was, now = statistics.median(before.ratios), statistics.median(figure.ratios)
        limit = threshold(before.ratios, figure.ratios)
        if was > 0 and now > was * (1 + limit):
            found.append(f"{key}: {was:.3f} -> {now:.3f} (+{now / was - 1:.0%}, threshold {limit:.0%})")
    return found


def figures(results: Mapping[str, object]) -> dict[str, Figure]:
    """The judged figures of a results file (cases without per-round ratios: their one median)."""
    out = {}
    for group, data in results.get("groups", {}).items():  # type: ignore[union-attr]
        for case, entry in data["cases"].items():
            rounds = entry.get("ratio_rounds") or [entry["ratio_cpu"]]
            out[f"{group}/{case}"] = Figure(rounds, entry["cpu_s"]["median"])
    return out
