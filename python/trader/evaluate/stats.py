"""Confidence intervals for the evaluation: the percentile bootstrap of a mean (Efron & Tibshirani
1993, ch. 13), seeded so that a report reproduces."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Interval(NamedTuple):
    mean: float
    low: float | None  # None: fewer than two values, no interval
    high: float | None
    n: int

    def text(self, fmt: str = "{:+.2f}") -> str:
        if self.low is None:
            return fmt.format(self.mean) + " (n=1)"
        return f"{fmt.format(self.mean)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def bootstrap_mean(values, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> Interval:
    """The mean of `values` and the percentile bootstrap interval of the mean at `level`."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"values: expected a non-empty 1-d sequence, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values: expected finite numbers")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), got {level}")
    if len(x) == 1:
        return Interval(float(x[0]), None, None, 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(x.mean()), float(low), float(high), len(x))
