"""Means with bootstrap confidence intervals.

Percentile bootstrap of the mean (Efron & Tibshirani 1993, "An Introduction to the Bootstrap",
ch. 13): resample with replacement, take the mean of each resample, the interval is the
(1 - level) / 2 and (1 + level) / 2 quantiles of those means. Values over folds and seeds
[folds, seeds] are resampled in two stages, folds first and then seeds within each fold drawn
(Davison & Hinkley 1997, "Bootstrap Methods and their Application", section 3.8), so that the
interval covers both how the agent does on other periods and how it does with other seeds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Interval(NamedTuple):
    mean: float
    low: float
    high: float
    n: int  # values the mean is over

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95_low": self.low, "ci95_high": self.high, "n": self.n}


def bootstrap_mean(values, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> Interval:
    """Mean of `values` (1-D: one per seed; 2-D: [folds, seeds]) and its percentile bootstrap interval.
    Deterministic given `seed`. A ValueError on no values or a non-finite one."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"values: expected [seeds] or [folds, seeds] with at least one value, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values: a bootstrap needs finite values")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    folds, seeds = x.shape
    f = rng.integers(0, folds, size=(resamples, folds))
    s = rng.integers(0, seeds, size=(resamples, folds, seeds))
    means = x[f[:, :, None], s].mean(axis=(1, 2))
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))
