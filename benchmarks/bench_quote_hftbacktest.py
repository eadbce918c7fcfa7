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

Runs, each one change away from the one before, so that each difference has one cause:
  hbt           hftbacktest as its users run it: its own converter (depth and trades stamped with
                the transaction time T), decisions every 100 ms from its first event, the strategy
                seeing the book at the local (receive) time that hftbacktest corrected so that feed
                latency is >= 0.
  hbt-exch      local time := exchange time: the strategy sees the exchange's book (no feed latency),
                as our env does on its exchange clock.
  hbt-grid      decisions at our env's row times (multiples of 100 ms of exchange time).
  hbt-ours-ev   our converted events translated to hftbacktest's format (depth stamped with the event
                time E, as our converter does): the same input as ours.
  hbt-ours-seg  decisions when our env takes them: after every market event that the event array
                holds before the first book message stamped after the row time (segment_decision_times).
  ours          trader.sim quote env (actions="quote", one agent), rows every 100 ms on the exchange
                clock.

hftbacktest runs with no_partial_fill_exchange: its partial_fill_exchange in 2.4.4 stops with
InvalidOrderStatus when a partial fill exactly exhausts an order (nkaz001/hftbacktest#301, #312)
and never applies partial fills to position and balance (#299, #316). With the default size of one
lot an order cannot fill partially, so both exchange models give the same fills there.

Usage:
  PYTHONPATH=python python3 benchmarks/bench_quote_hftbacktest.py [--file F] [--variant touch|inside|both]
      [--size 0.001] [--max-position 0.005] [--maker-fee-bps 2] [--taker-fee-bps 5] [--json OUT]

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
from hftbacktest import EXCH_EVENT, LOCAL_EVENT, BacktestAsset, HashMapMarketDepthBacktest
from hftbacktest.data.validation import correct_event_order, validate_event_order
from hftbacktest.order import FILLED, GTX, LIMIT, NEW, PARTIALLY_FILLED
from hftbacktest.types import event_dtype as HBT_EVENT_DTYPE

# bench_replay first: it puts the checkout's python/ on sys.path when trader is not installed.
from bench_replay import hbt_convert_files, hbt_from_ours, machine_info, quiet_fd_stdout  # noqa: I001

from trader.data.binance import convert_sequence, group_sequences  # noqa: E402
from trader.sim import TradingVectorEnv, encode_quote, load_market  # noqa: E402

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
    quoted_lots: int  # lots of the limit orders sent (each new or replaced quote)
    fills: int  # (decision step, side) pairs with a fill: at most one order per side rests at a time
    filled_lots: int
    notional: float  # quote currency
    final_position_lots: int
    fees: float  # quote currency (negative: rebates)
    pnl_net: float  # quote currency: cash + position at the final mid - fees
    fill_ts: np.ndarray  # [fills] exchange ns
    fill_side: np.ndarray  # [fills] +1 bid filled (bought), -1 ask filled (sold)
    fill_price: np.ndarray  # [fills] ticks
    fill_lots: np.ndarray  # [fills] lots
    quotes: np.ndarray  # [steps, 2] bid, ask price ticks the strategy asked for (0: none)
    step_ts: np.ndarray  # [steps] decision times, ns (hftbacktest: its local clock)
    seconds: float

    @property
    def pnl_gross(self) -> float:
        return self.pnl_net + self.fees


def _fill_arrays(fills: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, ...]:
    """(time ns, side, price ticks, lots) of each fill, as four int64 arrays."""
    return tuple(np.array([f[i] for f in fills], np.int64) for i in range(4))


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
                    taker_bps: float, decide_at: np.ndarray | None = None) -> RunResult:
    """The strategy loop in hftbacktest: look at the book, keep or replace each quote, elapse(100 ms).
    decide_at: the decision times instead (ns on hftbacktest's local clock, non-decreasing); default:
    every 100 ms from 100 ms after its first event to the end of the data."""
    t0 = time.perf_counter()
    bt = HashMapMarketDepthBacktest([hbt_asset(data, tick, lot, maker_bps, taker_bps)])
    bt.elapse(0)  # reads the first events: the clock starts at the first local timestamp
    first = bt.current_timestamp + STEP_NS

    def decision_time(n: int) -> int | None:
        if decide_at is None:
            return first + n * STEP_NS
        return int(decide_at[n]) if n < len(decide_at) else None

    status = bt.elapse(max(decision_time(0) - bt.current_timestamp, 0))
    n = 0
    live = {1: None, -1: None}  # side -> id of our order resting there
    sides: dict[int, int] = {}  # id -> side, for every order not yet seen filled, cancelled or expired
    fills: list[tuple[int, int, int, int]] = []
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
                fills.append((o.exch_timestamp, side, o.exec_price_tick, round(o.exec_qty / lot)))
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
        n += 1
        when = decision_time(n)
        if when is None:
            break
        status = bt.elapse(max(when - bt.current_timestamp, 0))
    if status not in (0, 1):
        raise RuntimeError(f"{name}: hftbacktest elapse() returned {status}, not 0 or 1 (end of data)")
    collect_fills()
    sv = bt.state_values(0)
    depth = bt.depth(0)
    mid = 0.5 * (depth.best_bid + depth.best_ask)
    res = RunResult(
        name, len(step_ts), next_id * rule.size_lots, int(sv.num_trades), round(sv.trading_volume / lot),
        float(sv.trading_value),
        round(sv.position / lot), float(sv.fee), float(sv.balance + sv.position * mid - sv.fee),
        *_fill_arrays(fills), np.array(quotes, np.int64), np.array(step_ts, np.int64), time.perf_counter() - t0)
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


# ---- ours ----------------------------------------------------------------------------------------

QUOTE_MIN_TICKS = -1  # grid: index 0 = one tick inside the touch, index 1 = at the touch, 2 = no quote
QUOTE_LEVELS = 2


def run_ours(market, rule: QuoteRule, maker_bps: float, taker_bps: float) -> RunResult:
    """The same strategy through our quote env: one env, one agent, one episode over every row."""
    t0 = time.perf_counter()
    lot = market.lot_size
    env = TradingVectorEnv(
        market, num_envs=1, seed=0, actions="quote", quote_min_ticks=QUOTE_MIN_TICKS, quote_levels=QUOTE_LEVELS,
        trade_size=rule.size_lots * lot, max_position=rule.max_position_lots * lot, maker_fee_bps=maker_bps,
        taker_fee_bps=taker_bps, order_latency_ns=0, cancel_latency_ns=0, queue_model="power", queue_power=2.0,
        horizon=len(market.ts) - 2, start_min=0, start_max=0, ruin_fraction=0.0)
    initial_cash = env.env_config["initial_cash"]
    obs, info = env.reset(seed=0)
    fills, quotes, step_ts = [], [], []
    quoted = 0
    notional = 0.0
    while True:
        t = int(info["t"][0])
        bb, ba = int(market.book[t, 0, 0]), int(market.book[t, 0, 2])
        want = rule.prices(bb, ba, int(info["position"][0]))
        quotes.append([w or 0 for w in want])
        step_ts.append(int(market.ts[t]))
        # grid index = offset from the same-side touch (bid = best bid - offset, ask = best ask + offset)
        # - quote_min_ticks; quote_levels = no quote
        idx = [QUOTE_LEVELS if w is None else (bb - w if s == 0 else w - ba) - QUOTE_MIN_TICKS
               for s, w in enumerate(want)]
        obs, reward, term, trunc, info = env.step(np.array([encode_quote(*idx, quote_levels=QUOTE_LEVELS)]))
        maker, signed = int(info["maker_filled"][0]), int(info["filled"][0])
        bought, sold = (maker + signed) // 2, (maker - signed) // 2
        for side, lots in ((1, bought), (-1, sold)):
            if lots:
                price = want[0 if side == 1 else 1]
                fills.append((int(market.ts[t + 1]), side, price, lots))
                notional += price * market.tick_size * lots * lot
        quoted += int(info["quoted"][0])
        if term[0] or trunc[0]:
            break
    arrays = _fill_arrays(fills)
    return RunResult(
        "ours", len(step_ts), quoted, int(len(fills)), int(arrays[3].sum()), notional,
        int(info["position"][0]), float(info["fees"][0]), float(info["equity"][0]) - initial_cash,
        *arrays, np.array(quotes, np.int64), np.array(step_ts, np.int64), time.perf_counter() - t0)


def segment_decision_times(market) -> np.ndarray:
    """When, in exchange time, our env takes the decision of row k: the core replays the market events
    between the emission of row k and of row k + 1 (in the event array's order), so the decision at
    row k comes just before the first event of segment k, and after every trade received before it,
    even one stamped after row k's time (trades do not move the sampling grid; see
    cpp/book/replay.cpp, sample_top). One ns before that event's exchange time, row k's time at least."""
    first = market.records[np.minimum(market.starts[:-1], len(market.records) - 1), 0] - 1
    return np.maximum.accumulate(np.maximum(first, market.ts))


# ---- comparison ----------------------------------------------------------------------------------


def fill_keys(r: RunResult) -> list[tuple[int, int, int]]:
    """(decision step, side, price) of each fill: the step whose interval (step_ts[k], step_ts[k+1]]
    holds the fill's time."""
    step = np.searchsorted(r.step_ts, r.fill_ts, side="left") - 1
    return sorted(zip(step.tolist(), r.fill_side.tolist(), r.fill_price.tolist()))


def match_fills(a: RunResult, b: RunResult) -> dict:
    """Fills at the same decision step, side and price in both runs (a multiset intersection)."""
    from collections import Counter

    ka, kb = Counter(fill_keys(a)), Counter(fill_keys(b))
    both = sum((ka & kb).values())
    only_a, only_b = sum((ka - kb).values()), sum((kb - ka).values())
    differing = (ka - kb) + (kb - ka)
    first = min(k[0] for k in differing) if differing else None
    return {"same": both, f"only_{a.name}": only_a, f"only_{b.name}": only_b, "first_differing_step": first}


METRICS = (
    ("steps", "decisions", "{:d}"),
    ("quoted_lots", "quoted (lots)", "{:d}"),
    ("fills", "fills", "{:d}"),
    ("filled_lots", "filled (lots)", "{:d}"),
    ("notional", "traded notional (USDT)", "{:.2f}"),
    ("final_position_lots", "final position (lots)", "{:d}"),
    ("fees", "maker fees (USDT)", "{:.4f}"),
    ("pnl_gross", "PnL before fees (USDT)", "{:.4f}"),
    ("pnl_net", "PnL after fees (USDT)", "{:.4f}"),
)


def table(runs: list[RunResult], diffs: list[tuple[str, str]]) -> str:
    by = {r.name: r for r in runs}
    head = ["metric"] + [r.name for r in runs] + [f"{a} - {b}" for a, b in diffs]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for key, label, fmt in METRICS:
        vals = [getattr(r, key) for r in runs]
        cells = [fmt.format(v) for v in vals]
        for a, b in diffs:
            d = getattr(by[a], key) - getattr(by[b], key)
            cells.append(("{:+d}" if isinstance(d, int) else "{:+.4f}").format(d))
        lines.append("| " + " | ".join([label] + cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from trader.data.dataset import Dataset

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", default=str(DEFAULT_FILE), help="one USD-M raw feed file (with its REST snapshot)")
    ap.add_argument("--variant", choices=("touch", "inside", "both"), default="both")
    ap.add_argument("--size", type=float, default=0.001, help="quote size, base units [default: one lot]")
    ap.add_argument("--max-position", type=float, default=0.005, help="position limit, base units")
    ap.add_argument("--maker-fee-bps", type=float, default=2.0, help="Binance USD-M VIP 0 maker fee")
    ap.add_argument("--taker-fee-bps", type=float, default=5.0,
                    help="Binance USD-M VIP 0 taker fee (the strategy never takes)")
    ap.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = ap.parse_args(argv)

    path = Path(args.file)
    files = group_sequences([path])
    if len(files) != 1 or files[0][0].instrument.market != "usdm":
        ap.error(f"--file: expected one USD-M raw feed file, got {path}")
    t0 = time.perf_counter()
    events, meta = convert_sequence(files[0])
    market = load_market(Dataset(path, events, meta))
    tick, lot = market.tick_size, market.lot_size
    size_lots, max_lots = round(args.size / lot), round(args.max_position / lot)
    if size_lots < 1 or max_lots < size_lots:
        ap.error(f"--size {args.size} / --max-position {args.max_position}: need 1 lot ({lot}) <= size <= max position")
    theirs = hbt_convert_files([path], 20_000_000)[0]
    ours_exch = events.copy()
    ours_exch["local_ts"] = ours_exch["exch_ts"]
    ours_in_hbt = hbt_from_ours(ours_exch, tick, lot)
    print(f"data: {path.name}: {len(market.ts)} rows of 100 ms, {len(events):,} events (ours), "
          f"{len(theirs):,} rows (hftbacktest's converter); prepared in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)

    m = machine_info()
    print(f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; Python {m['python']}; hftbacktest "
          f"{m.get('hftbacktest')} (numba {m.get('numba')})")
    print(f"strategy: size {size_lots} lot(s) ({args.size} {meta['symbol'][:-4]}), max position {max_lots} lots, "
          f"re-quote every 100 ms; power queue model n=2; maker {args.maker_fee_bps} bps, taker "
          f"{args.taker_fee_bps} bps; zero order and cancel latency")
    out = {"file": str(path), "machine": m, "args": {k: str(v) for k, v in vars(args).items()}, "variants": {}}
    for variant in (("touch", "inside") if args.variant == "both" else (args.variant,)):
        rule = QuoteRule(size_lots, max_lots, variant == "inside")
        common = (rule, tick, lot, args.maker_fee_bps, args.taker_fee_bps)
        runs = [
            run_hftbacktest("hbt", theirs, *common),
            run_hftbacktest("hbt-exch", exchange_clock(theirs), *common),
            run_hftbacktest("hbt-grid", exchange_clock(theirs), *common, decide_at=market.ts[:-2]),
            run_hftbacktest("hbt-ours-ev", ours_in_hbt, *common, decide_at=market.ts[:-2]),
            run_hftbacktest("hbt-ours-seg", ours_in_hbt, *common, decide_at=segment_decision_times(market)[:-2]),
            run_ours(market, *common[:1], args.maker_fee_bps, args.taker_fee_bps),
        ]
        by = {r.name: r for r in runs}
        matched = match_fills(by["hbt-ours-seg"], by["ours"])
        print(f"\n== quotes {'one tick inside when the spread is >= 3 ticks' if rule.inside else 'at the touch'}")
        print(table(runs, [("ours", "hbt"), ("ours", "hbt-ours-seg")]))
        partial = {r.name: int((r.fill_lots < size_lots).sum()) for r in (by["hbt-ours-seg"], by["ours"])}
        print(f"fills of hbt-ours-seg and ours at the same decision step, side and price: {matched}; "
              f"fills of fewer lots than the quote size: {partial}")
        print("seconds (the first hftbacktest run of the process includes numba's JIT compilation): "
              + ", ".join(f"{r.name} {r.seconds:.2f}" for r in runs))
        out["variants"][variant] = {
            "runs": {r.name: {k: getattr(r, k) for k, _, _ in METRICS} | {"seconds": r.seconds} for r in runs},
            "fills_hbt_ours_seg_vs_ours": matched,
            "partial_fills": partial,
        }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
