"""The nearest-rank quantile every benchmark and the soak report their p50/p99 with."""

from __future__ import annotations


def quantile(values: list[float], q: float) -> float:
    """The value at rank round(q × (n − 1)) of the sorted values; NaN when there are none."""
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return sorted(values)[k]
