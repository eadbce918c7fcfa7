"""Observation features from book snapshots, in versioned sets: normalized, no look-ahead (row t uses
rows <= t). A run records the set it trained on (`feature_set` in its arguments); runs saved before
sets had numbers used set 1 (LEGACY_SET), and every later reader rebuilds the set a run recorded.

Set 1 (`book_features`), D = 4 L + 6 columns: distance of each level to the mid in bps (/10), log1p of
each level's size in base units, then mid return since the previous row (bps), spread (bps), top-of-book
and depth imbalance, and the aggressor trade flow of the interval (log1p of base units, imbalance).
Sizes in base units are not comparable across instruments (0.01 BTC and 100 NEXO are similar notionals).

Set 2 (`scale_free_features`, issue 13), D = 4 L + 7 columns, the same layout plus one: every size is
relative to a causal scale of the instrument's own depth, the exponentially weighted mean of the
mean level size over the shown depth, both sides (weight 1 / SCALE_ROWS per row, the first row its own
scale), so that an agent trained on one instrument reads another's book on the same footing: log1p of
level size / scale, log1p of the interval's traded volume / scale, and last the order flow imbalance
at the touch (Cont, Kukanov and Stoikov 2014, eq. 10, over one row) / scale, clipped to +-OFI_CLIP.
Prices stay in bps of the mid (scale-free already). Multiplying every size by a constant (another lot
size, another instrument's typical depth) leaves set 2 unchanged. The mean level size rather than the
touch size: on 2 minutes of Binance BTCUSDT and ETHUSDT and 5 of NEXOUSDT the median of log1p(level /
scale) is 0.19, 0.14, 0.28 with it, 0.03, 0.03, 1.46 with the touch (BTC and ETH pile size at the touch).

Set 3 (set 2 and `history_features`, session 10, issue 13), D = 4 L + 7 + 12: set 2 and the recent past, in
units that carry across instruments and row grids. Sets 1 and 2 show one row: on a 100 ms grid, 0.1 s of
flow. Session 9's markouts found the quoting agents' fills adversely selected within seconds (the
informed flow of Glosten and Milgrom 1985 keeps moving the price after it trades), which one row cannot
tell. For each half-life of HALF_LIVES_S (seconds, whatever the grid: the weight per row is 1 - 2^(-row
interval / half-life)), exponential means of: the mid, giving the trend (mid - mean) / mid in bps (clipped
to +-50, / 5, as the return); the aggressor flow, giving its imbalance mean(bought - sold) / mean(bought +
sold); the touch OFI, giving mean(OFI) / mean(|OFI|); and the squared mid return, giving the volatility
log1p(sqrt(mean(return^2) / row interval)) in bps per square-root second. Every ratio is free of the
instrument's size unit; the means start from row 0 (the mid's at row 0's, the others at 0).

Missing levels (price 0) get distance 0 and size 0 in every set.

A live session (trader.live) gets its rows one at a time: `FeatureStream` gives each row's features by
the same functions on the window [previous row, row], the depth scale carried on from the row before,
so that every row equals the last row of `features` over the rows so far, to the bit.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

SETS = (1, 2, 3)
DEFAULT_SET = 1  # new runs unless told (trader train's PPO defaults come from benchmarks/sweep_defaults.py)
LEGACY_SET = 1  # the set of runs saved before sets had numbers (no feature_set in their arguments)
SCALE_ROWS = 600  # rows of the depth scale's exponential mean (60 s on the default 100 ms grid)
OFI_CLIP = 10.0  # touch sizes of order flow imbalance, either way
HALF_LIVES_S = (1.0, 10.0, 60.0)  # set 3's exponential means: seconds


def run_set(args: dict) -> int:
    """The set a run observed, from its saved arguments (LEGACY_SET for a run saved before sets had numbers)."""
    return check_set(args.get("feature_set", LEGACY_SET))


def check_set(feature_set) -> int:
    if isinstance(feature_set, bool) or feature_set not in SETS:
        raise ValueError(f"feature_set: expected one of {', '.join(map(str, SETS))}, got {feature_set!r}")
    return int(feature_set)


def features(book: np.ndarray, lot_size: float, trade_flow: np.ndarray | None = None, *,
             feature_set: int = DEFAULT_SET, interval_s: float | None = None) -> np.ndarray:
    """The observation features of set `feature_set` (see the module docstring); set 3 needs the rows'
    spacing `interval_s` (seconds)."""
    if check_set(feature_set) == 1:
        return book_features(book, lot_size, trade_flow)
    if feature_set == 2:
        return scale_free_features(book, trade_flow)
    history, _ = history_features(_history_inputs(book, trade_flow), interval_s)
    return np.concatenate([scale_free_features(book, trade_flow), history], axis=1)


def _prices(book: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bid distance, ask distance in bps / 10, return in bps, spread in bps) of every row."""
    if book.ndim != 3 or book.shape[2] != 4:
        raise ValueError(f"book: expected shape [rows, levels, 4], got {book.shape}")
    bid_px = book[:, :, 0].astype(np.float64)
    ask_px = book[:, :, 2].astype(np.float64)
    if np.any(bid_px[:, 0] <= 0) or np.any(ask_px[:, 0] <= 0):
        bad = int(np.argmax((bid_px[:, 0] <= 0) | (ask_px[:, 0] <= 0)))
        raise ValueError(f"book: row {bad} has an empty side; sample after the first snapshot")
    mid = 0.5 * (bid_px[:, 0] + ask_px[:, 0])
    m = mid[:, None]
    bid_dist = np.where(bid_px > 0, (m - bid_px) / m * 1e4 / 10.0, 0.0)
    ask_dist = np.where(ask_px > 0, (ask_px - m) / m * 1e4 / 10.0, 0.0)
    ret = np.zeros(len(book))
    ret[1:] = np.log(mid[1:] / mid[:-1]) * 1e4
    spread = (ask_px[:, 0] - bid_px[:, 0]) / mid * 1e4
    return bid_dist, ask_dist, ret, spread


def _imbalances(bid_q: np.ndarray, ask_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = (bid_q[:, 0] - ask_q[:, 0]) / np.maximum(bid_q[:, 0] + ask_q[:, 0], 1e-12)
    depth = (bid_q.sum(1) - ask_q.sum(1)) / np.maximum(bid_q.sum(1) + ask_q.sum(1), 1e-12)
    return top, depth


def _flow(trade_flow: np.ndarray | None, rows: int, unit: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bought + sold, their imbalance) of every row's interval; sizes times `unit`."""
    if trade_flow is None:
        return np.zeros(rows), np.zeros(rows)
    bought = trade_flow[:, 0] * unit
    sold = trade_flow[:, 1] * unit
    return bought + sold, (bought - sold) / np.maximum(bought + sold, 1e-12)


def _scalars(ret, spread, top_imb, depth_imb, vol, flow_imb) -> np.ndarray:
    return np.stack([np.clip(ret, -50, 50) / 5.0, np.clip(spread, 0, 100) / 5.0, top_imb, depth_imb, vol, flow_imb], 1)


def book_features(book: np.ndarray, lot_size: float, trade_flow: np.ndarray | None = None) -> np.ndarray:
    """Set 1. book: int64 [T, L, 4] (bid px, bid qty, ask px, ask qty in ticks/lots) -> float32 [T, 4L+6]."""
    bid_dist, ask_dist, ret, spread = _prices(book)
    bid_q = book[:, :, 1].astype(np.float64) * lot_size
    ask_q = book[:, :, 3].astype(np.float64) * lot_size
    vol, flow_imb = _flow(trade_flow, len(book), lot_size)
    cols = [bid_dist, ask_dist, np.log1p(bid_q), np.log1p(ask_q),
            _scalars(ret, spread, *_imbalances(bid_q, ask_q), np.log1p(vol), flow_imb)]
    return np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float32)


def depth_scale(book: np.ndarray) -> np.ndarray:
    """The causal size scale of every row (lots): exponential mean over SCALE_ROWS rows of the mean level
    size of the shown depth (both sides, missing levels 0), starting from row 0's own; never below one lot."""
    return np.maximum(_depth_mean(book, None), 1.0)


def _depth_mean(book: np.ndarray, before: float | None) -> np.ndarray:
    """depth_scale's exponential mean, unclipped; `before`: the mean of the row before row 0, which it
    carries on from (None: row 0's own level)."""
    level = 0.5 * (book[:, :, 1] + book[:, :, 3]).mean(axis=1, dtype=np.float64)
    a = 1.0 / SCALE_ROWS
    mean, _ = lfilter([a], [1.0, a - 1.0], level, zi=[(1.0 - a) * (level[0] if before is None else before)])
    return mean


def touch_ofi(book: np.ndarray) -> np.ndarray:
    """Order flow imbalance at the touch from each row to the next, lots (Cont, Kukanov and Stoikov 2014,
    eq. 10: bid size added at or above the previous best bid minus size removed from it, less the same on
    the ask side); 0 at row 0."""
    pb, qb, pa, qa = (book[:, 0, i].astype(np.float64) for i in range(4))
    e = np.zeros(len(book))
    e[1:] = ((pb[1:] >= pb[:-1]) * qb[1:] - (pb[1:] <= pb[:-1]) * qb[:-1]
             - (pa[1:] <= pa[:-1]) * qa[1:] + (pa[1:] >= pa[:-1]) * qa[:-1])
    return e


def scale_free_features(book: np.ndarray, trade_flow: np.ndarray | None = None,
                        scale: np.ndarray | None = None) -> np.ndarray:
    """Set 2. book: int64 [T, L, 4] -> float32 [T, 4L+7]; sizes relative to depth_scale (lot size cancels;
    `scale`: the rows' depth_scale when known)."""
    bid_dist, ask_dist, ret, spread = _prices(book)
    scale = depth_scale(book) if scale is None else scale
    bid_q = book[:, :, 1].astype(np.float64) / scale[:, None]
    ask_q = book[:, :, 3].astype(np.float64) / scale[:, None]
    vol, flow_imb = _flow(trade_flow, len(book), 1.0 / scale)
    ofi = np.clip(touch_ofi(book) / scale, -OFI_CLIP, OFI_CLIP)
    cols = [bid_dist, ask_dist, np.log1p(bid_q), np.log1p(ask_q),
            _scalars(ret, spread, *_imbalances(bid_q, ask_q), np.log1p(vol), flow_imb), ofi[:, None]]
    return np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float32)


def _history_inputs(book: np.ndarray, trade_flow: np.ndarray | None) -> np.ndarray:
    """[T, 6]: set 3's series per row: mid (ticks), bought - sold, bought + sold (lots), touch OFI, |OFI|
    (lots), squared mid return (bps^2)."""
    mid = 0.5 * (book[:, 0, 0] + book[:, 0, 2]).astype(np.float64)
    flow = np.zeros((len(book), 2)) if trade_flow is None else trade_flow.astype(np.float64)
    ofi = touch_ofi(book)
    ret = _prices(book)[2]
    return np.stack([mid, flow[:, 0] - flow[:, 1], flow[:, 0] + flow[:, 1], ofi, np.abs(ofi), ret * ret], 1)


def _weights(interval_s: float | None) -> list[float]:
    """Set 3's exponential means: the weight of each new row, per half-life of HALF_LIVES_S."""
    if interval_s is None or not interval_s > 0:
        raise ValueError(f"feature_set 3: needs rows on a time grid (interval > 0 ms), got {interval_s} s")
    return [1.0 - 2.0 ** (-interval_s / h) for h in HALF_LIVES_S]


def history_features(x: np.ndarray, interval_s: float | None, state: list | None = None) -> tuple[np.ndarray, list]:
    """Set 3's last 12 columns, float32 [T, 12], from the rows' _history_inputs `x`, and the exponential
    means' filter states after the last row (a stream carries them on as `state`; None: start at row 0)."""
    out, states = [], []
    mid, start = x[:, 0], x[:1] * np.array([1, 0, 0, 0, 0, 0])  # the means start at row 0's mid, others at 0
    for i, a in enumerate(_weights(interval_s)):
        zi = (1.0 - a) * start if state is None else state[i]
        m, zf = lfilter([a], [1.0, a - 1.0], x, axis=0, zi=zi)
        states.append(zf)
        out += [np.clip((mid - m[:, 0]) / mid * 1e4, -50, 50) / 5.0,
                m[:, 1] / np.maximum(m[:, 2], 1e-12),
                m[:, 3] / np.maximum(m[:, 4], 1e-12),
                np.log1p(np.sqrt(m[:, 5] / interval_s))]
    return np.ascontiguousarray(np.stack(out, 1), dtype=np.float32), states


class FeatureStream:
    """The features of set `feature_set` of one row at a time (a live feed's): each equal to the last row
    of `features` over every row pushed so far. The window [previous row, row] gives the mid return and
    the touch OFI; set 2's depth scale carries on from the exponential mean of the row before, set 3's
    exponential means from their filter states."""

    def __init__(self, lot_size: float, feature_set: int = DEFAULT_SET, interval_s: float | None = None):
        self.lot_size = lot_size
        self.feature_set = check_set(feature_set)
        self.interval_s = interval_s  # set 3: the rows' spacing (s)
        if self.feature_set == 3:
            _weights(interval_s)  # checks it
        self._prev: np.ndarray | None = None  # the previous row's levels [L, 4]
        self._before: float | None = None  # the depth mean of the row before the previous one
        self._state: list | None = None  # set 3: the exponential means' filter states

    def push(self, top: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """float32 [D]: the features of the next row, its levels top [L, 4] and its trade flow [2]."""
        book = top[None] if self._prev is None else np.stack([self._prev, top])
        flows = np.zeros((len(book), 2), np.int64)
        flows[-1] = flow
        if self.feature_set == 1:
            row = book_features(book, self.lot_size, flows)[-1]
        else:
            mean = _depth_mean(book, self._before)
            row = scale_free_features(book, flows, np.maximum(mean, 1.0))[-1]
            self._before = None if self._prev is None else float(mean[0])  # the next window's row before
        if self.feature_set == 3:
            x = _history_inputs(book, flows)[-1:]  # the window gives the return and OFI of the new row
            history, self._state = history_features(x, self.interval_s, self._state)
            row = np.concatenate([row, history[-1]])
        self._prev = top.copy()
        return row
