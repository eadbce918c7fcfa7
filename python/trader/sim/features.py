"""Default observation features from book snapshots: normalized, no look-ahead (row t uses rows <= t).

For L levels a side, per row: distance of each level to the mid in bps (/10), log1p of each level's
size in base units, then mid return since the previous row (bps), spread (bps), top-of-book and
depth imbalance, and the aggressor trade flow of the interval (log volume and imbalance).
D = 4 L + 6 columns. Missing levels (price 0) get distance 0 and size 0.
"""

from __future__ import annotations

import numpy as np


def book_features(book: np.ndarray, lot_size: float, trade_flow: np.ndarray | None = None) -> np.ndarray:
    """book: int64 [T, L, 4] (bid px, bid qty, ask px, ask qty in ticks/lots) -> float32 [T, 4L+6]."""
    if book.ndim != 3 or book.shape[2] != 4:
        raise ValueError(f"book: expected shape [rows, levels, 4], got {book.shape}")
    T, L, _ = book.shape
    bid_px = book[:, :, 0].astype(np.float64)
    bid_q = book[:, :, 1].astype(np.float64) * lot_size
    ask_px = book[:, :, 2].astype(np.float64)
    ask_q = book[:, :, 3].astype(np.float64) * lot_size
    if np.any(bid_px[:, 0] <= 0) or np.any(ask_px[:, 0] <= 0):
        bad = int(np.argmax((bid_px[:, 0] <= 0) | (ask_px[:, 0] <= 0)))
        raise ValueError(f"book: row {bad} has an empty side; sample after the first snapshot")
    mid = 0.5 * (bid_px[:, 0] + ask_px[:, 0])
    m = mid[:, None]
    bid_dist = np.where(bid_px > 0, (m - bid_px) / m * 1e4 / 10.0, 0.0)
    ask_dist = np.where(ask_px > 0, (ask_px - m) / m * 1e4 / 10.0, 0.0)
    ret = np.zeros(T)
    ret[1:] = np.log(mid[1:] / mid[:-1]) * 1e4
    spread = (ask_px[:, 0] - bid_px[:, 0]) / mid * 1e4
    top_imb = (bid_q[:, 0] - ask_q[:, 0]) / np.maximum(bid_q[:, 0] + ask_q[:, 0], 1e-12)
    depth_imb = (bid_q.sum(1) - ask_q.sum(1)) / np.maximum(bid_q.sum(1) + ask_q.sum(1), 1e-12)
    if trade_flow is None:
        vol = np.zeros(T)
        flow_imb = np.zeros(T)
    else:
        bought = trade_flow[:, 0] * lot_size
        sold = trade_flow[:, 1] * lot_size
        vol = np.log1p(bought + sold)
        flow_imb = (bought - sold) / np.maximum(bought + sold, 1e-12)
    cols = [bid_dist, ask_dist, np.log1p(bid_q), np.log1p(ask_q),
            np.stack([np.clip(ret, -50, 50) / 5.0, np.clip(spread, 0, 100) / 5.0, top_imb, depth_imb, vol, flow_imb], 1)]
    return np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float32)
