"""Encoder datasets: per-instrument feature series, labels at several horizons, time-ordered splits.

Each dataset folder becomes a series of rows sampled on a fixed time grid (default 100 ms, 10 levels):
input rows of trader.nn.inputs (book features: distance to mid in bps, log sizes, returns, spread,
imbalances, trade flow; then order flow per level). Splits are in time order inside every series,
train | gap | val | gap | test, with gaps of at least the longest horizon so no training label sees a
test price; a series given as `test_series` is test rows only (a dataset never trained on).
Normalization: the causal rolling z-score of trader.nn.inputs.RollingNorm ("rolling"), or per-feature
mean and std of the training rows ("train"). Label thresholds: per series from its own training rows
("series"; a test-only series from its own rows), so every instrument gets the same class balance
whatever its tick and volatility, or one threshold pooled over the training rows ("pooled"). The
library defaults (book inputs, "train", "pooled") are those of the first encoder reports; `trader
train-encoder` and benchmarks/encoder_lodo.py default to book+of, "rolling" and "series" (issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trader.nn.inputs import RollingNorm, encoder_inputs
from trader.nn.labels import class_balance, direction_labels, smoothed_returns, threshold_for_share

SPLITS = ("train", "val", "test")
NORMS = ("rolling", "train")
ALPHA_SCOPES = ("series", "pooled")


@dataclass
class Series:
    name: str
    features: np.ndarray  # float32 [T, F], raw (not normalized) input rows of trader.nn.inputs
    mid: np.ndarray  # float64 [T] ticks
    book: np.ndarray  # int64 [T, L, 4]
    ts: np.ndarray  # int64 [T]
    levels: int
    inputs: str = "book"  # trader.nn.inputs.INPUTS
    interval_ms: float = 100.0  # row spacing of the time grid


def load_series(data, *, depth: int = 10, interval_ms: float = 100.0, inputs: str = "book") -> Series:
    """Sample a dataset on its exchange clock, or on the receive clock where the data has no exchange
    time (Bitstamp's order_book messages: exch_ts = 0)."""
    from trader.data.dataset import load_dataset
    from trader.sim.env import load_market

    ds = load_dataset(data)
    clock = "exchange" if (ds.events["exch_ts"] != 0).any() else "local"
    market = load_market(ds, depth=depth, interval_ms=interval_ms, clock=clock)
    mid = 0.5 * (market.book[:, 0, 0] + market.book[:, 0, 2]).astype(np.float64)
    name = Path(data).name if data is not None else "sample"
    feats = encoder_inputs(market.features, market.book, market.lot_size, inputs)
    return Series(name, feats, mid, market.book, market.ts, depth, inputs, float(interval_ms))


def check_features(series: Series) -> None:
    bad = ~np.isfinite(series.features)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"features of {series.name}: non-finite value at row {r}, column {c}")


@dataclass
class EncoderData:
    """Series, labels [T, H] per series, split row ranges, and the normalization (rolling, or the mean
    and std of the training rows)."""

    series: list[Series]
    horizons: tuple[int, ...]
    window: int
    labels: list[np.ndarray] = field(default_factory=list)  # int64 [T, H], -1 = unlabelled
    ranges: dict = field(default_factory=dict)  # split -> list of (start, stop) per series
    norm: dict = field(default_factory=lambda: {"kind": "train"})
    mean: np.ndarray | None = None  # norm "train" only
    std: np.ndarray | None = None
    alphas: list[list[float]] = field(default_factory=list)  # per series, per horizon
    inputs: str = "book"
    _normalized: dict = field(default_factory=dict, repr=False)

    def normalized(self, i: int) -> np.ndarray:
        if i not in self._normalized:
            self._normalized[i] = normalizer(self.norm, self.mean, self.std)(self.series[i].features)
        return self._normalized[i]

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


def normalizer(norm: dict, mean=None, std=None):
    """A function of raw input rows [T, F] of one series (from its start) -> normalized float32 rows."""
    if norm["kind"] == "rolling":
        return lambda x: RollingNorm(norm["halflife"], x.shape[1]).apply(x)
    if norm["kind"] == "train":
        return lambda x: ((x - mean) / std).astype(np.float32)
    raise ValueError(f"norm: expected one of {', '.join(NORMS)}, got {norm['kind']!r}")


def build(series: list[Series], *, horizons=(10, 20, 50, 100), window: int = 100,
          fractions=(0.7, 0.1, 0.2), stationary_share: float = 1 / 3, alphas=None, test_series=(),
          norm: str = "train", norm_halflife: float = 5000.0, alpha_scope: str = "pooled") -> EncoderData:
    """Split `series` train | val | test in time order; `test_series` are test rows only. `alphas`: one
    threshold per horizon for every series (overrides alpha_scope)."""
    if not series and not test_series:
        raise ValueError("no data series given")
    if not series and norm == "train":
        raise ValueError("norm 'train' needs training series (its statistics come from their training rows)")
    if alpha_scope == "pooled" and alphas is None and not series:
        raise ValueError("alpha scope 'pooled' needs training series (or give alphas)")
    if norm not in NORMS:
        raise ValueError(f"norm: expected one of {', '.join(NORMS)}, got {norm!r}")
    if alpha_scope not in ALPHA_SCOPES:
        raise ValueError(f"alpha scope: expected one of {', '.join(ALPHA_SCOPES)}, got {alpha_scope!r}")
    horizons = tuple(int(k) for k in horizons)
    gap = max(horizons)
    everything = list(series) + list(test_series)
    widths = {(s.inputs, s.features.shape[1], s.interval_ms) for s in everything}
    if len(widths) != 1:
        raise ValueError(f"series have different inputs (kind, width, interval ms) {sorted(widths)}; use the same "
                         "depth, inputs and interval")
    data = EncoderData(everything, horizons, window, inputs=everything[0].inputs,
                       norm={"kind": norm, "halflife": float(norm_halflife)} if norm == "rolling" else {"kind": norm})
    data.ranges = {s: [] for s in SPLITS}
    for j, s in enumerate(everything):
        check_features(s)
        T = len(s.features)
        if j >= len(series):  # test only
            if T < window + gap:
                raise ValueError(f"series {s.name}: {T} rows are too few for window {window} and horizon {gap}")
            for name, r in zip(SPLITS, ((0, 0), (0, 0), (0, T))):
                data.ranges[name].append(r)
            continue
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
    # Thresholds per horizon from training rows only (a test-only series: its own rows).
    rets = [[smoothed_returns(s.mid, k) for k in horizons] for s in everything]
    train_r = [r if r[1] > r[0] else data.ranges["test"][i] for i, r in enumerate(data.ranges["train"])]
    if alphas is not None:
        data.alphas = [[float(a) for a in alphas] for _ in everything]
    elif alpha_scope == "pooled":
        pooled = [threshold_for_share(np.concatenate([rets[i][h][a:b] for i, (a, b) in
                                                      enumerate(data.ranges["train"][:len(series)])]), stationary_share)
                  for h in range(len(horizons))]
        data.alphas = [pooled for _ in everything]
    else:
        data.alphas = [[threshold_for_share(rets[i][h][a:b], stationary_share) for h in range(len(horizons))]
                       for i, (a, b) in enumerate(train_r)]
    for i, s in enumerate(everything):
        data.labels.append(np.stack([direction_labels(rets[i][h], data.alphas[i][h]) for h in range(len(horizons))], 1))
        # A label needs k future rows: inside its own split only (the gap keeps them out of the next).
    if norm == "train":
        train_feats = np.concatenate([s.features[a:b] for s, (a, b) in zip(series, data.ranges["train"])])
        data.mean = train_feats.mean(axis=0).astype(np.float32)
        data.std = np.maximum(train_feats.std(axis=0), 1e-6).astype(np.float32)
    return data
