"""What the latency benchmarks report of their samples."""

import statistics
from collections.abc import Sequence


def p50_p95_max(values: Sequence[float]) -> tuple[float, float, float]:
    """The median, the 95th percentile (the nearest sample) and the maximum of `values`, which
    must not be empty."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]
