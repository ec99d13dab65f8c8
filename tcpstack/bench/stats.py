"""Small statistics for the benchmark: percentiles of samples, median/min/max of runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` 0.99 is p99) of a non-empty sequence."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_summary(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p99, min and max of round-trip times given in nanoseconds, in µs."""
    us = [s / 1000 for s in samples_ns]
    return {"median_us": statistics.median(us), "p99_us": percentile(us, 0.99),
            "min_us": min(us), "max_us": max(us), "count": len(us)}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of the runs of one figure."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
