"""The market data of the pure-Python reference env (trader.sim.reference): each dataset's arrays and
its constants in its own tick and lot size, checked as the C++ binding checks them
(cpp/bindings/env_bindings.cpp, make_data), and the numbering of episode starts across datasets that
the reset draw uses (cpp/env/trading_env.cpp, TradingEnv::reset; issue 13)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trader.sim import spec
from trader.sim.reference_guard import ARM_WINDOWS, move_guard
from trader.sim.reference_numbers import llround

# the rewards that value fills at a later mid (they read the row times); spec.h's marks_out()
MARKOUT_REWARDS = ("markout", "markout_penalty")


def load_datasets(cfg: dict[str, Any], markets: list[dict]) -> tuple[list[dict], int]:
    """(per dataset: the env attributes it sets, with `offset` = the starts of the datasets before it;
    the total of episode starts). markets: dicts as _core.EnvPool.from_markets takes them."""
    datasets: list[dict] = []
    offset = 0
    for i, m in enumerate(markets):
        where = m["name"] or (f"dataset {i}" if len(markets) > 1 else "")
        try:
            d = _load(cfg, m["book"], m["features"], m["ts"], m["records"], m["starts"], m["start_min"],
                      m["start_max"], m["tick_size"], m["lot_size"])
        except ValueError as e:
            raise ValueError(f"{where}: {e}" if where else str(e)) from None
        first = datasets[0] if datasets else d
        if (d["levels"], d["dim"]) != (first["levels"], first["dim"]):
            raise ValueError(f"{where}: {d['levels']} levels and {d['dim']} feature columns, the first dataset "
                             f"has {first['levels']} and {first['dim']}")
        d["offset"] = offset
        offset += d["last_start"] - d["start_min"] + 1
        datasets.append(d)
    return datasets, offset


def _load(cfg, book, features, ts, records, starts, start_min, start_max, tick_size, lot_size) -> dict:
    """One dataset's arrays and constants."""
    if not (tick_size > 0 and math.isfinite(tick_size)):
        raise ValueError("tick_size: expected > 0 quote")
    if not (lot_size > 0 and math.isfinite(lot_size)):
        raise ValueError("lot_size: expected > 0 base")
    if cfg["trade_notional"] <= 0 and llround(cfg["trade_size"] / lot_size) < 1:
        raise ValueError(f"trade_size: expected at least one lot ({lot_size} base), got {cfg['trade_size']}")
    book, features = np.asarray(book), np.asarray(features)
    if book.ndim != 3 or book.shape[2] != 4 or book.dtype != np.int64:
        raise ValueError("book: expected an int64 array [rows, levels, 4]")
    if features.ndim != 2 or features.shape[0] != book.shape[0] or features.dtype != np.float32:
        raise ValueError(f"features: expected a float32 array [rows, dim] with as many rows as book ({book.shape[0]})")
    rows, levels = book.shape[0], book.shape[1]
    if cfg["actions"].startswith("quote") and not (cfg["quote_min_ticks"] > -levels and
                                                   cfg["quote_min_ticks"] + cfg["quote_levels"] - 1 < levels):
        raise ValueError(f"quote_min_ticks / quote_levels: expected a quote grid inside the book depth ({levels})")
    if ts is None and (cfg["order_latency_ns"] > 0 or cfg["cancel_latency_ns"] > 0):
        raise ValueError("order_latency_ns / cancel_latency_ns: > 0 needs the row times (ts)")
    if ts is None and cfg["max_hold_ns"] > 0:
        raise ValueError("max_hold_ns: > 0 needs the row times (ts)")
    if ts is None and cfg["reward"] in MARKOUT_REWARDS:
        raise ValueError(f"reward: {cfg['reward']} needs the row times (ts)")
    if records is None and cfg["actions"].startswith("quote"):
        raise ValueError(f"actions: '{cfg['actions']}' needs the market stream (records, starts)")
    if rows < cfg["horizon"] + 2:
        raise ValueError(f"book: {rows} rows are fewer than a horizon ({cfg['horizon']}) plus 2")
    last_start = start_max if start_max >= 0 else rows - 1 - cfg["horizon"]
    if start_max >= 0 and start_max + cfg["horizon"] >= rows:
        raise ValueError(f"start_max: episodes starting at row {start_max} run past the data ({rows} rows)")
    if start_min < 0:
        raise ValueError(f"start_min: expected >= 0, got {start_min}")
    if start_min > last_start:
        raise ValueError(f"start_min: {start_min} is after the last start row {last_start}")
    bid, ask = book[:, 0, 0], book[:, 0, 2]
    bad = np.flatnonzero((bid <= 0) | (ask <= 0) | (bid >= ask))
    if bad.size:
        r = int(bad[0])
        raise ValueError(f"book: row {r} needs a best bid and a best ask with bid < ask "
                         f"(got bid {int(bid[r])}, ask {int(ask[r])} ticks)")
    nonfinite = np.argwhere(~np.isfinite(features))
    if nonfinite.size:
        raise ValueError(f"features: non-finite value at row {nonfinite[0][0]}, column {nonfinite[0][1]}")
    ref_price = spec.reference_price(book, tick_size)
    trade_lots, max_lots = spec.size_lots(cfg, lot_size, ref_price)
    if trade_lots < 1:
        raise ValueError(f"trade_notional: expected at least one lot ({lot_size} base = {lot_size * ref_price} quote "
                         f"at the first row's mid {ref_price}), got {cfg['trade_notional']}")
    hi_lots = spec.order_limit_lots(cfg, trade_lots, max_lots)
    mid = [0.5 * float(b + a) for b, a in zip(bid.tolist(), ask.tolist())]  # ticks
    drift = 0.0  # markout_detrend: ticks per ns from start_min to the last row an episode reaches
    if cfg["markout_detrend"] and ts is not None:
        r0, r1 = int(start_min), min(last_start + cfg["horizon"], rows - 1)
        if int(ts[r1]) > int(ts[r0]):
            drift = (mid[r1] - mid[r0]) / float(int(ts[r1]) - int(ts[r0]))
    guarded = None  # per row: what the move guard bars, reference_guard's bits (None: the guard is off)
    window = cfg["guard_window_ns"]
    if window > 0:
        if ts is None:
            raise ValueError("guard_window_ns: > 0 needs the row times (ts)")
        span = int(ts[-1]) - int(ts[0])
        if span < ARM_WINDOWS * window:
            raise ValueError(f"guard_window_ns: the move guard arms after six windows of rows "
                             f"({ARM_WINDOWS * window / 1e9:g} s), but the data spans {span / 1e9:g} s, so nothing "
                             f"could open a position; use a window of at most {span / ARM_WINDOWS / 1e9:g} s")
        guarded = move_guard([int(t) for t in ts], mid, window, cfg["guard_sigmas"], cfg["guard_halflife_ns"],
                             cfg["guard_hold_ns"], cfg["guard_sides"])
    return dict(book=book, features=features, rows=rows, levels=levels, dim=features.shape[1],
                start_min=int(start_min), last_start=last_start,
                ts=None if ts is None else [int(t) for t in ts], records=records,
                starts=None if starts is None else [int(s) for s in starts],
                mid=mid, drift=drift, guarded=guarded,
                ntl=tick_size * lot_size,  # quote per tick-lot
                trade_lots=trade_lots, max_lots=max_lots, hi_lots=hi_lots,
                min_lots=-hi_lots if cfg["allow_short"] else 0)
