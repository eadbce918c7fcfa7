"""Mid-price direction labels with the smoothed threshold of DeepLOB (Zhang, Zohren, Roberts 2019,
eq. 3-4) also used by TLOB (Berti, Kasneci 2025):

    m_-(t) = mean(p_{t-k+1} .. p_t),  m_+(t) = mean(p_{t+1} .. p_{t+k}),  l_t = (m_+ - m_-) / m_-
    label = up (2) if l_t > alpha, down (0) if l_t < -alpha, stationary (1) otherwise.

Rows without k future (or k past) prices get label -1 (no label). alpha may be chosen on the
training rows so that the stationary class holds a given share (balanced classes by default).
"""

from __future__ import annotations

import numpy as np

DOWN, STATIONARY, UP, NO_LABEL = 0, 1, 2, -1


def smoothed_returns(mid: np.ndarray, k: int) -> np.ndarray:
    """l_t for every row (NaN where the past or future window is incomplete)."""
    mid = np.asarray(mid, dtype=np.float64)
    if k < 1:
        raise ValueError(f"horizon k: expected >= 1, got {k}")
    T = len(mid)
    out = np.full(T, np.nan)
    if T < 2 * k:
        return out
    c = np.concatenate([[0.0], np.cumsum(mid)])
    t = np.arange(k - 1, T - k)
    m_minus = (c[t + 1] - c[t + 1 - k]) / k
    m_plus = (c[t + 1 + k] - c[t + 1]) / k
    out[t] = (m_plus - m_minus) / m_minus
    return out


def threshold_for_share(returns: np.ndarray, stationary_share: float = 1 / 3) -> float:
    """alpha such that |l| <= alpha holds `stationary_share` of the (finite) returns."""
    r = np.abs(returns[np.isfinite(returns)])
    if len(r) == 0:
        raise ValueError("no labelled rows to choose a threshold from")
    return float(np.quantile(r, stationary_share))


def direction_labels(returns: np.ndarray, alpha: float) -> np.ndarray:
    labels = np.full(len(returns), NO_LABEL, dtype=np.int64)
    ok = np.isfinite(returns)
    labels[ok] = STATIONARY
    labels[ok & (returns > alpha)] = UP
    labels[ok & (returns < -alpha)] = DOWN
    return labels


def class_balance(labels: np.ndarray) -> dict:
    ok = labels >= 0
    n = int(ok.sum())
    counts = np.bincount(labels[ok], minlength=3)
    return {"down": float(counts[0] / max(n, 1)), "stationary": float(counts[1] / max(n, 1)),
            "up": float(counts[2] / max(n, 1)), "rows": n}
