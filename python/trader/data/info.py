"""Summary statistics of a dataset: span, events by kind, sampling gaps, spread and depth."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from trader.data.dataset import Dataset
from trader.data.events import BOOK_KINDS, EventFlag, EventKind


def _pct(x: np.ndarray, qs=(50, 90, 99)) -> dict:
    if len(x) == 0:
        return {}
    out = {f"p{q}": float(np.percentile(x, q)) for q in qs}
    out["max"] = float(x.max())
    out["mean"] = float(x.mean())
    return out


def dataset_info(ds: Dataset, depth: int = 10) -> dict:
    ev = ds.events
    kinds = np.bincount(ev["kind"], minlength=6)
    by_kind = {k.name.lower(): int(kinds[k]) for k in EventKind}
    book_end = np.isin(ev["kind"], BOOK_KINDS) & ((ev["flags"] & EventFlag.END_OF_MESSAGE) != 0)
    exch = ev["exch_ts"][book_end]
    exch = exch[exch > 0]
    local = ev["local_ts"]
    info = {
        "path": str(ds.path),
        "exchange": ds.meta["exchange"],
        "market": ds.meta["market"],
        "symbol": ds.symbol,
        "tick_size": ds.meta["tick_size"],
        "lot_size": ds.meta["lot_size"],
        "events": int(len(ev)),
        "events_by_kind": by_kind,
        "book_messages": int(book_end.sum()),
        "exchange_span_ns": [int(exch.min()), int(exch.max())] if len(exch) else None,
        "local_span_ns": [int(local.min()), int(local.max())] if len(ev) else None,
        "duration_s": float((exch.max() - exch.min()) / 1e9) if len(exch) else 0.0,
    }
    if len(exch) > 1:
        gaps_ms = np.diff(np.sort(exch)) / 1e6
        info["book_update_gap_ms"] = _pct(gaps_ms)
        info["book_update_gaps_over_1s"] = int((gaps_ms > 1000).sum())
    _, book, flow = ds.sample_top(depth=depth)
    both = (book[:, 0, 0] > 0) & (book[:, 0, 2] > 0)
    b = book[both]
    if len(b):
        tick = float(Decimal(ds.meta["tick_size"]))
        lot = float(Decimal(ds.meta["lot_size"]))
        spread_ticks = (b[:, 0, 2] - b[:, 0, 0]).astype(np.float64)
        mid = (b[:, 0, 2] + b[:, 0, 0]) * 0.5
        info["spread_ticks"] = _pct(spread_ticks)
        info["spread_bps"] = _pct(spread_ticks / mid * 1e4)
        info["mid_price"] = {"first": float(mid[0] * tick), "last": float(mid[-1] * tick),
                             "min": float(mid.min() * tick), "max": float(mid.max() * tick)}
        info[f"bid_size_top{depth}"] = _pct(b[:, :, 1].sum(axis=1) * lot)
        info[f"ask_size_top{depth}"] = _pct(b[:, :, 3].sum(axis=1) * lot)
        info[f"levels_filled_top{depth}"] = {
            "bid_min": int((b[:, :, 0] > 0).sum(axis=1).min()),
            "ask_min": int((b[:, :, 2] > 0).sum(axis=1).min()),
        }
        info["traded_base"] = {"bought": float(flow[:, 0].sum() * lot), "sold": float(flow[:, 1].sum() * lot)}
    if "report" in ds.meta:
        info["conversion_report"] = ds.meta["report"]
    return info
