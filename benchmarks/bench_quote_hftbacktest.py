#!/usr/bin/env python3
"""One fixed quoting strategy run in hftbacktest 2.4.4 and in our quote env, side by side.

The strategy (the same function decides for both, from the best bid and ask it is shown):
  every 100 ms, quote one bid and one ask of --size base units, post-only,
    touch:  at the best bid and the best ask;
    inside: one tick inside each touch when the spread is at least 3 ticks (so that the two quotes
            stay apart and neither crosses), otherwise at the touch;
  no bid while position + size > --max-position, no ask while position - size < -max-position;
  an order whose price is unchanged is kept (it keeps its queue position), one whose price changed
  is cancelled and sent again (back of the queue).
Both simulators: power queue model with n = 2 (hftbacktest's PowerProbQueueFunc, our
queue_model="power", queue_power=2), the same maker and taker fees in bps of notional, zero order
and cancel latency, one USD-M raw file of ../shared/data/binance_hftbacktest_raw_feed.

Runs, so that each difference has one cause:
  hbt           hftbacktest as its users run it: its own converter (depth and trades stamped with
                the transaction time T), the strategy sees the book at the local (receive) time,
                corrected by hftbacktest so that feed latency is >= 0.
  hbt-exch      the same events, local time := exchange time: the strategy sees the exchange's book
                (zero feed latency), as our env does on its exchange clock.
  hbt-ours-ev   our converted events translated to hftbacktest's format (depth stamped with the
                event time E, as our converter does), local time := exchange time, acting on the
                same 100 ms grid as our env's rows: the same input and the same decision times as
                ours, so what is left is the matching engine.
  ours          trader.sim quote env (actions="quote", one agent), rows every 100 ms on the
                exchange clock.

hftbacktest runs with no_partial_fill_exchange: its partial_fill_exchange in 2.4.4 stops with
InvalidOrderStatus when a partial fill exactly exhausts an order (nkaz001/hftbacktest#301, #312)
and never applies partial fills to position and balance (#299, #316). With the default size of one
lot an order cannot fill partially, so both exchange models give the same fills there.

Usage:
  PYTHONPATH=python python3 benchmarks/bench_quote_hftbacktest.py [--file F] [--variant touch|inside]
      [--size 0.001] [--max-position 0.005] [--maker-fee-bps 2] [--taker-fee-bps 5] [--json]

This is a plain script, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench_replay import hbt_convert_files, hbt_from_ours, machine_info, quiet_fd_stdout

from trader.data.binance import convert_sequence, group_sequences

from hftbacktest import EXCH_EVENT, LOCAL_EVENT, BacktestAsset, HashMapMarketDepthBacktest
from hftbacktest.data.validation import correct_event_order, validate_event_order
from hftbacktest.order import FILLED, GTX, LIMIT, NEW, PARTIALLY_FILLED
from hftbacktest.types import event_dtype as HBT_EVENT_DTYPE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance_hftbacktest_raw_feed"
DEFAULT_FILE = DATA / "usdm/btcusdt_20240808.gz"
STEP_NS = 100_000_000


# ---- the strategy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QuoteRule:
    """The fixed strategy: which prices (ticks) to quote given the touch and the position (lots)."""

    size_lots: int
    max_position_lots: int
    inside: bool

    def prices(self, best_bid: int, best_ask: int, position: int) -> tuple[int | None, int | None]:
        bid, ask = best_bid, best_ask
        if self.inside and best_ask - best_bid >= 3:
            bid, ask = best_bid + 1, best_ask - 1
        if position + self.size_lots > self.max_position_lots:
            bid = None
        if position - self.size_lots < -self.max_position_lots:
            ask = None
        return bid, ask


@dataclass
class RunResult:
    name: str
    steps: int
    orders_sent: int
    fills: int  # order fills (each a whole order: one lot by default)
    filled_lots: int
    notional: float  # quote currency
    final_position_lots: int
    fees: float  # quote currency (negative: rebates)
    pnl_net: float  # quote currency: cash + position at the final mid - fees
    fill_ts: np.ndarray  # [fills] exchange ns
    fill_side: np.ndarray  # [fills] +1 bid filled (bought), -1 ask filled (sold)
    fill_price: np.ndarray  # [fills] ticks
    quotes: np.ndarray  # [steps, 2] bid, ask price ticks the strategy asked for (0: none)
    step_ts: np.ndarray  # [steps] decision times, ns (hftbacktest: its local clock)
    seconds: float

    @property
    def pnl_gross(self) -> float:
        return self.pnl_net + self.fees


# ---- hftbacktest -------------------------------------------------------------------------------


def hbt_asset(data: np.ndarray, tick: float, lot: float, maker_bps: float, taker_bps: float):
    return (
        BacktestAsset()
        .data([data])
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .power_prob_queue_model(2.0)
        .no_partial_fill_exchange()
        .trading_value_fee_model(maker_bps * 1e-4, taker_bps * 1e-4)
        .tick_size(tick)
        .lot_size(lot)
        .last_trades_capacity(0)
    )


def run_hftbacktest(name: str, data: np.ndarray, rule: QuoteRule, tick: float, lot: float, maker_bps: float,
                    taker_bps: float, grid_start: int | None = None) -> RunResult:
    """The strategy loop in hftbacktest: look at the book, keep or replace each quote, elapse(100 ms).
    grid_start: first decision time (ns on hftbacktest's local clock); default: 100 ms after its start."""
    t0 = time.perf_counter()
    bt = HashMapMarketDepthBacktest([hbt_asset(data, tick, lot, maker_bps, taker_bps)])
    bt.elapse(0)  # reads the first events: the clock starts at the first local timestamp
    start = grid_start if grid_start is not None else bt.current_timestamp + STEP_NS
    status = bt.elapse(max(start - bt.current_timestamp, 0))
    live = {1: None, -1: None}  # side -> id of our order resting there
    sides: dict[int, int] = {}  # id -> side, for every order not yet seen filled, cancelled or expired
    fills: list[tuple[int, int, int]] = []
    quotes, step_ts = [], []
    next_id = 0
    qty = rule.size_lots * lot

    def collect_fills():
        orders = bt.orders(0)
        for oid, side in list(sides.items()):
            o = orders.get(oid)
            if o is None or o.status in (NEW, PARTIALLY_FILLED):
                continue
            if o.status == FILLED:
                fills.append((o.exch_timestamp, side, o.exec_price_tick))
            del sides[oid]
        bt.clear_inactive_orders(0)

    while status == 0:
        collect_fills()
        depth = bt.depth(0)
        pos = round(bt.position(0) / lot)
        want = dict(zip((1, -1), rule.prices(depth.best_bid_tick, depth.best_ask_tick, pos)))
        quotes.append([want[1] or 0, want[-1] or 0])
        step_ts.append(bt.current_timestamp)
        orders = bt.orders(0)
        for side in (1, -1):
            oid = live[side]
            o = orders.get(oid) if oid is not None else None
            if o is not None and o.status not in (NEW, PARTIALLY_FILLED):
                o = None
            if o is not None and o.price_tick == want[side]:
                continue  # unchanged price: keep the order and its queue position
            if o is not None:
                bt.cancel(0, oid, False)
            live[side] = None
            if want[side] is not None:
                next_id += 1
                submit = bt.submit_buy_order if side == 1 else bt.submit_sell_order
                submit(0, next_id, want[side] * tick, qty, GTX, LIMIT, False)
                live[side], sides[next_id] = next_id, side
        status = bt.elapse(STEP_NS)
    if status != 1:
        raise RuntimeError(f"{name}: hftbacktest elapse() returned {status}, not 1 (end of data)")
    collect_fills()
    sv = bt.state_values(0)
    depth = bt.depth(0)
    mid = 0.5 * (depth.best_bid + depth.best_ask)
    res = RunResult(
        name, len(step_ts), next_id, int(sv.num_trades), round(sv.trading_volume / lot), float(sv.trading_value),
        round(sv.position / lot), float(sv.fee), float(sv.balance + sv.position * mid - sv.fee),
        np.array([f[0] for f in fills], np.int64), np.array([f[1] for f in fills], np.int64),
        np.array([f[2] for f in fills], np.int64), np.array(quotes, np.int64), np.array(step_ts, np.int64),
        time.perf_counter() - t0)
    bt.close()
    return res


def exchange_clock(data: np.ndarray) -> np.ndarray:
    """hftbacktest events with local time := exchange time (the strategy sees the exchange's book).
    The rows of a converted array carry EXCH_EVENT and/or LOCAL_EVENT (correct_event_order splits
    a row whose two clocks disagree on the order in two); the exchange-side rows are each event once."""
    picked = data[(data["ev"] & EXCH_EVENT) != 0]
    rows = np.zeros(len(picked), HBT_EVENT_DTYPE)  # the dtype its numba code is compiled for
    for f in HBT_EVENT_DTYPE.names:
        rows[f] = picked[f]
    rows["ev"] &= ~np.uint64(EXCH_EVENT | LOCAL_EVENT)
    rows["local_ts"] = rows["exch_ts"]
    order = np.argsort(rows["exch_ts"], kind="mergesort")
    with quiet_fd_stdout():
        out = correct_event_order(rows, order, order)
        validate_event_order(out)
    return out
