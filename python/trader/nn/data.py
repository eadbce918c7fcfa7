"""Encoder datasets: per-instrument feature series, labels at several horizons, time-ordered splits.

Each dataset folder becomes a series of rows sampled on a fixed time grid (default 100 ms, 10 levels):
features from trader.sim.features.book_features (distance to mid in bps, log sizes, returns, spread,
imbalances, trade flow). Splits are in time order inside every series, train | gap | val | gap | test,
with gaps of at least the longest horizon so no training label sees a test price. Normalization
statistics (per-feature mean and std) come from training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trader.nn.labels import class_balance, direction_labels, smoothed_returns, threshold_for_share

SPLITS = ("train", "val", "test")


@dataclass
class Series:
    name: str
    features: np.ndarray  # float32 [T, F], raw (not normalized)
    mid: np.ndarray  # float64 [T] ticks
    book: np.ndarray  # int64 [T, L, 4]
    ts: np.ndarray  # int64 [T]
    levels: int


def load_series(data, *, depth: int = 10, interval_ms: float = 100.0) -> Series:
    from trader.sim.env import load_market

    market = load_market(data, depth=depth, interval_ms=interval_ms)
    mid = 0.5 * (market.book[:, 0, 0] + market.book[:, 0, 2]).astype(np.float64)
    name = Path(data).name if data is not None else "sample"
    return Series(name, market.features, mid, market.book, market.ts, depth)


def check_features(series: Series) -> None:
    bad = ~np.isfinite(series.features)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"features of {series.name}: non-finite value at row {r}, column {c}")


@dataclass
class EncoderData:
    """Series, labels [T, H] per series, split row ranges, normalization from the training rows."""

    series: list[Series]
    horizons: tuple[int, ...]
    window: int
    labels: list[np.ndarray] = field(default_factory=list)  # int64 [T, H], -1 = unlabelled
    ranges: dict = field(default_factory=dict)  # split -> list of (start, stop) per series
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    alphas: list[float] = field(default_factory=list)

    def normalized(self, i: int) -> np.ndarray:
        return ((self.series[i].features - self.mean) / self.std).astype(np.float32)

    def rows(self, split: str) -> list[tuple[int, np.ndarray]]:
        """(series index, row indices t) of labelled rows of a split with a full window behind them."""
        out = []
        for i, (start, stop) in enumerate(self.ranges[split]):
            t = np.arange(max(start, self.window - 1), stop)
            t = t[(self.labels[i][t] >= 0).all(axis=1)] if len(t) else t
            out.append((i, t))
        return out

    def balance(self) -> dict:
        out = {}
        for split in SPLITS:
            out[split] = {}
            for h, k in enumerate(self.horizons):
                lab = np.concatenate([self.labels[i][t, h] for i, t in self.rows(split)]) if self.series else []
                out[split][f"k={k}"] = class_balance(np.asarray(lab, dtype=np.int64))
        return out


def build(series: list[Series], *, horizons=(10, 20, 50, 100), window: int = 100,
          fractions=(0.7, 0.1, 0.2), stationary_share: float = 1 / 3, alphas=None) -> EncoderData:
    if not series:
        raise ValueError("no data series given")
    horizons = tuple(int(k) for k in horizons)
    gap = max(horizons)
    data = EncoderData(series, horizons, window)
    data.ranges = {s: [] for s in SPLITS}
    for s in series:
        check_features(s)
        T = len(s.features)
        usable = T - 2 * gap
        if usable < 3 * window or window > T:
            raise ValueError(
                f"series {s.name}: {T} rows are too few for window {window} and horizon gaps {gap} "
                f"(need at least {3 * window + 2 * gap})")
        n_train = int(usable * fractions[0])
        n_val = int(usable * fractions[1])
        train = (0, n_train)
        val = (n_train + gap, n_train + gap + n_val)
        test = (val[1] + gap, T)
        for name, r in zip(SPLITS, (train, val, test)):
            data.ranges[name].append(r)
    # Thresholds per horizon from training rows only (pooled over series).
    rets = [[smoothed_returns(s.mid, k) for k in horizons] for s in series]
    if alphas is None:
        alphas = []
        for h in range(len(horizons)):
            pooled = np.concatenate([rets[i][h][a:b] for i, (a, b) in enumerate(data.ranges["train"])])
            alphas.append(threshold_for_share(pooled, stationary_share))
    data.alphas = [float(a) for a in alphas]
    for i, s in enumerate(series):
        data.labels.append(np.stack([direction_labels(rets[i][h], data.alphas[h]) for h in range(len(horizons))], 1))
        # A label needs k future rows: inside its own split only (the gap keeps them out of the next).
    train_feats = np.concatenate([s.features[a:b] for s, (a, b) in zip(series, data.ranges["train"])])
    data.mean = train_feats.mean(axis=0).astype(np.float32)
    data.std = np.maximum(train_feats.std(axis=0), 1e-6).astype(np.float32)
    return data
