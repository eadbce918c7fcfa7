"""What the encoders read: book features plus order flow per level, and the causal normalization that
makes them comparable across days and instruments.

- `order_flow`: bid and ask order flow of every level between consecutive rows (Kolm, Turiel, Westray
  2023, "Deep order flow imbalance: extracting alpha at multiple horizons from the limit order book",
  Math. Finance, eq. 2.1-2.2; the best level is Cont, Kukanov, Stoikov 2014, deeper levels Xu, Gould,
  Howison 2019). Kolm et al. find that networks fed order flow beat the same networks fed raw book
  states at every horizon, because order flow is closer to stationary:
      bOF_m = q^b_n 1{P^b_n >= P^b_{n-1}} - q^b_{n-1} 1{P^b_n <= P^b_{n-1}}
      aOF_m = q^a_{n-1} 1{P^a_n >= P^a_{n-1}} - q^a_n 1{P^a_n <= P^a_{n-1}}
  in base units, signed so that positive means buying pressure on both sides (OFI_m = bOF_m + aOF_m).
- `encoder_inputs`: trader.sim.features.book_features (4L + 6 columns) then bOF and aOF per level (2L),
  optionally the OFI of levels 1..5 summed over the last 5, 10, 20, 50 rows (the baseline's inputs),
  optionally the trend of the mid, (p_t - mean(p_{t-k+1} .. p_t)) / p_t in bps for k in TREND_ROWS.
  The trend is the martingale part of the labels (trader.nn.labels): they compare the mean of the next
  k mids with m_-(t), the mean of the last k, so with a martingale mid E[m_+(t)] = p_t and the expected
  label return is (p_t - m_-(t)) / m_-(t), known at t (the smoothing of Zhang, Zohren, Roberts 2019,
  eq. 3-4). Held out (benchmarks/README.md, encoder section), a logistic regression on `of+ofi+trend`
  is 5 to 11 macro-F1 points above the OFI baseline, one on `of+ofi` below it at k = 10, 20.
- `InputStream`: the same normalized rows one live sample at a time.
- `RollingNorm`: a causal exponentially weighted z-score per column, z_t = (x_t - m_t) / s_t with m_t,
  s_t^2 the weighted mean and variance of rows <= t (weights 2^(-age / halflife), normalized like
  pandas `ewm(adjust=True)`), clipped to +-10. It replaces statistics of the training rows: DeepLOB
  (Zhang, Zohren, Roberts 2019, sec. IV-A) normalizes each day with the statistics of the days
  before it for the same reason: a held-out day or instrument has other price and size scales (BTC
  spreads are 0.002 bps, NEXOUSDT's 8 bps). `RollingNorm.push` gives the same rows one at a time for
  live trading.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

# book_features only; then order flow per level; then also OFI summed over the last OFI_LAGS rows; or the
# order flow and its sums alone (no level prices or sizes, which differ most between instruments)
# or those and the trend of the mid
INPUTS = ("book", "book+of", "book+of+ofi", "of+ofi", "of+ofi+trend")
OFI_LAGS = (5, 10, 20, 50)  # rows; as the baseline's (trader.nn.baselines), for levels 1..OFI_LEVELS
TREND_ROWS = (10, 20, 50, 100)  # rows; the default label horizons of trader train-encoder
OFI_LEVELS = 5
CLIP = 10.0


def order_flow(book: np.ndarray, lot_size: float = 1.0) -> np.ndarray:
    """book: int64 [T, L, 4] -> float64 [T, 2L]: bOF of levels 1..L, then aOF; row 0 is 0."""
    b = book.astype(np.float64)
    pb, qb, pa, qa = b[:, :, 0], b[:, :, 1] * lot_size, b[:, :, 2], b[:, :, 3] * lot_size
    out = np.zeros((len(b), 2 * b.shape[1]))
    L = b.shape[1]
    out[1:, :L] = qb[1:] * (pb[1:] >= pb[:-1]) - qb[:-1] * (pb[1:] <= pb[:-1])
    out[1:, L:] = qa[:-1] * (pa[1:] >= pa[:-1]) - qa[1:] * (pa[1:] <= pa[:-1])
    return out


def history_rows(inputs: str) -> int:
    """Book rows before a row that its input row reads (live keeps them)."""
    return {"book": 0, "book+of": 1, "book+of+ofi": max(OFI_LAGS), "of+ofi": max(OFI_LAGS),
            "of+ofi+trend": max(max(OFI_LAGS), max(TREND_ROWS) - 1)}[inputs]


def encoder_inputs(features: np.ndarray, book: np.ndarray, lot_size: float, inputs: str,
                   history: np.ndarray | None = None) -> np.ndarray:
    """features: book_features rows [T, 4L + 6] of `book` [T, L, 4] -> float32 [T, D] raw (not
    normalized) input rows; D = 4L + 6 ('book'), 6L + 6 ('book+of'), 6L + 26 ('book+of+ofi'), 2L + 20
    ('of+ofi'), 2L + 24 ('of+ofi+trend').
    `history`: book rows before book[0], the last history_rows(inputs) of them count (live: the last
    samples); None: book[0] starts the series (no order flow before it)."""
    if inputs not in INPUTS:
        raise ValueError(f"inputs: expected one of {', '.join(INPUTS)}, got {inputs!r}")
    if inputs == "book":
        return np.asarray(features, dtype=np.float32)
    n = len(book)
    rows = book if history is None or not len(history) else np.concatenate([history[-history_rows(inputs):], book])
    flow = order_flow(rows, lot_size)
    cols = [flow[-n:].astype(np.float32)] if inputs.startswith("of+") else [features, flow[-n:].astype(np.float32)]
    if "+ofi" in inputs:
        L = book.shape[1]
        m = min(OFI_LEVELS, L)
        c = np.concatenate([np.zeros((1, m)), np.cumsum(flow[:, :m] + flow[:, L:L + m], axis=0)])
        t = np.arange(len(rows) - n, len(rows))
        cols += [((c[t + 1] - c[np.maximum(t + 1 - lag, 0)])).astype(np.float32) for lag in OFI_LAGS]
    if inputs.endswith("+trend"):
        cols.append(mid_trend(rows)[-n:].astype(np.float32))
    return np.concatenate(cols, axis=1)


def mid_trend(book: np.ndarray, windows=TREND_ROWS) -> np.ndarray:
    """book: int64 [T, L, 4] -> float64 [T, len(windows)]: (p_t - mean of the last k mids) / p_t in bps
    (fewer rows at the start of the series)."""
    mid = 0.5 * (book[:, 0, 0] + book[:, 0, 2]).astype(np.float64)
    c = np.concatenate([[0.0], np.cumsum(mid)])
    t = np.arange(len(mid))
    out = []
    for k in windows:
        lo = np.maximum(t + 1 - k, 0)
        out.append((mid - (c[t + 1] - c[lo]) / (t + 1 - lo)) / mid * 1e4)
    return np.stack(out, axis=1)


class RollingNorm:
    """Causal EW z-score per column; `apply` on a whole series equals `push` row by row."""

    def __init__(self, halflife: float, columns: int):
        if halflife <= 0:
            raise ValueError(f"norm halflife: expected > 0 rows, got {halflife}")
        self.halflife = float(halflife)
        self.decay = 0.5 ** (1.0 / self.halflife)
        self.columns = int(columns)
        self.reset()

    def reset(self) -> None:
        self._w = 0.0
        self._s1 = np.zeros(self.columns)
        self._s2 = np.zeros(self.columns)

    def _z(self, x, s1, s2, w):
        mean = s1 / w
        var = np.maximum(s2 / w - mean * mean, 0.0)
        return np.clip((x - mean) / np.sqrt(var + 1e-12), -CLIP, CLIP).astype(np.float32)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x: [T, F] from the start of a series -> float32 [T, F] (does not touch the streaming state)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.columns:
            raise ValueError(f"norm: expected rows of {self.columns} columns, got shape {x.shape}")
        a = [1.0, -self.decay]
        s1 = lfilter([1.0], a, x, axis=0)
        s2 = lfilter([1.0], a, x * x, axis=0)
        w = lfilter([1.0], a, np.ones(len(x)))[:, None]
        return self._z(x, s1, s2, w)

    def push(self, row: np.ndarray) -> np.ndarray:
        """The normalized row of the next row of the series."""
        row = np.asarray(row, dtype=np.float64)
        self._w = self.decay * self._w + 1.0
        self._s1 = self.decay * self._s1 + row
        self._s2 = self.decay * self._s2 + row * row
        return self._z(row, self._s1, self._s2, self._w)


class InputStream:
    """Normalized input rows of an encoder from live samples: `push(book_features_row, top)` with top the
    sampled levels int64 [L, 4]; equals normalize(encoder_inputs(...)) of the series so far."""

    def __init__(self, inputs: str, lot_size: float, normalize):
        if inputs not in INPUTS:
            raise ValueError(f"inputs: expected one of {', '.join(INPUTS)}, got {inputs!r}")
        self.inputs, self.lot_size, self.normalize = inputs, lot_size, normalize
        self._history: list[np.ndarray] = []

    def push(self, features: np.ndarray, top: np.ndarray) -> np.ndarray:
        history = np.stack(self._history) if self._history else None
        row = encoder_inputs(features[None], top[None], self.lot_size, self.inputs, history)[0]
        keep = history_rows(self.inputs)
        self._history = (self._history + [np.array(top, copy=True)])[-keep:] if keep else []
        return self.normalize(row)
