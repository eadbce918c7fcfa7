#!/usr/bin/env python3
"""Replay speed of the trader core against hftbacktest, side by side in one run.

For each sequence of Binance raw feed files (the hftbacktest collector format, see
../shared/data/README.md section 1) this script times:

  conversion  raw .gz -> event array
              ours: trader.data.binance.group_sequences + convert_sequence (the C++ parser,
              cpp/feed; scanning the files, hashing them and the bookTicker check included)
              ours, Python reference: the same with trader.data.binance_reference (timed once)
              hftbacktest: hftbacktest.data.utils.binancefutures.convert, once per file
              (it reads futures files only; on spot files it raises KeyError, see below)
  replay      every event applied to the book
              ours: trader._core.replay(events) and trader._core.check_tickers(events)
              hftbacktest: a market-depth backtest built over its converted data (no orders),
              elapsed through the whole period with ONE elapse() call (its pure replay);
              also shown: ROIVectorMarketDepthBacktest, and a numba loop of elapse(100 ms) steps

Every timing is repeated --repeat times and the median is reported. Before timing, each
measured function runs once untimed, so numba JIT compilation (hftbacktest's converter helpers
and its jitclass backtest methods) and the OS file cache are excluded.

hftbacktest's converter cannot read spot files (spot depth diffs and REST snapshots carry no
"T" field, spot trades no "X"). For spot sequences hftbacktest's replay is therefore fed with our
events translated to its event format (snapshot -> DEPTH_CLEAR + DEPTH_SNAPSHOT, diff levels ->
DEPTH_EVENT, trades -> TRADE_EVENT, bookTicker dropped) and run through hftbacktest's own
correct_local_timestamp / correct_event_order / validate_event_order, exactly as its converter
does; its conversion row is then n/a. --hbt-source ours forces that path for futures too.

Identity: before timing, every sequence of --identity-files (default: every shared Binance file,
../shared/data/binance_hftbacktest_raw_feed and binance_spot_nexousdt_raw_feed) is converted by
the C++ parser and by the Python reference; the event arrays and the meta must be identical, or
the script exits 1. --identity-files with no file skips it.

Usage:
  PYTHONPATH=python python3 benchmarks/bench_replay.py [--files F ...] [--repeat N] [--json]

This is a plain script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("trader") is None:  # PYTHONPATH, when given, picks the package
    sys.path.insert(0, str(REPO / "python"))

from trader import _core  # noqa: E402
from trader.data import binance_reference  # noqa: E402
from trader.data.binance import convert_sequence, group_sequences, sequence_name  # noqa: E402
from trader.data.events import EventFlag, EventKind  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance_hftbacktest_raw_feed"
DEFAULT_FILES = [
    DATA / "spot/btcusdt_20240808.gz",
    DATA / "spot/btcusdt_20240809.gz",
    DATA / "usdm/btcusdt_20240808.gz",
]
IDENTITY_FILES = sorted(DATA.glob("*/*.gz")) + sorted((DATA.parent / "binance_spot_nexousdt_raw_feed").glob("*.gz"))
STEP_NS = 100_000_000  # elapse step of the loop variant: 100 ms

try:
    import hftbacktest as hbt_pkg
    from hftbacktest import (
        BUY_EVENT,
        DEPTH_CLEAR_EVENT,
        DEPTH_EVENT,
        DEPTH_SNAPSHOT_EVENT,
        SELL_EVENT,
        TRADE_EVENT,
        BacktestAsset,
        HashMapMarketDepthBacktest,
        ROIVectorMarketDepthBacktest,
    )
    from hftbacktest.data.utils import binancefutures as hbt_binancefutures
    from hftbacktest.data.validation import (
        correct_event_order,
        correct_local_timestamp,
        validate_event_order,
    )
    from hftbacktest.types import event_dtype as HBT_EVENT_DTYPE
    from numba import njit

    HBT_ERROR = None
except Exception as exc:  # ImportError, or a broken install
    hbt_pkg = None
    HBT_ERROR = f"{type(exc).__name__}: {exc}"

if HBT_ERROR is None:

    @njit
    def _elapse_loop(hbt, step):
        """The usual strategy loop without a strategy: elapse(step) until the data ends."""
        n = 0
        while True:
            r = hbt.elapse(step)
            n += 1
            if r != 0:
                return n, r


# ---- helpers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_fd_stdout():
    """Silence stdout at the file-descriptor level: hftbacktest's converter prints from numba code."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class Timed:
    """A function to time. fn() returns its result, or (result, seconds) to time only part of its
    work (setup excluded); otherwise the whole call is timed."""

    def __init__(self, fn):
        self.fn = fn
        self.times: list[float] = []
        self.result = None

    def run(self) -> None:
        gc.collect()
        t0 = time.perf_counter()
        out = self.fn()
        dt = time.perf_counter() - t0
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], float):
            out, dt = out
        self.times.append(dt)
        self.result = out


def time_interleaved(items: list[Timed], repeat: int) -> None:
    """One untimed warm-up run of each (numba JIT compilation, file cache), then `repeat` rounds in
    which every item runs once: ours and hftbacktest alternate, so both see the same machine load."""
    for it in items:
        it.fn()
    for _ in range(repeat):
        for it in items:
            it.run()


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # The compiler that built the loaded extension, from its .comment section; the build type from
    # scikit-build's wheel build dir (build/cp*/), which is what `pip install .` used.
    compiler = "unknown"
    try:
        blob = Path(_core.__file__).read_bytes()
        at = blob.find(b"GCC: (")
        if at < 0:
            at = blob.find(b"clang version")
        if at >= 0:
            compiler = blob[at : blob.find(b"\0", at)].decode(errors="replace")
    except OSError:
        pass
    for cache in sorted((REPO / "build").glob("cp*/CMakeCache.txt")):
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                compiler += f", CMAKE_BUILD_TYPE={line.split('=', 1)[1]}"
            elif line.startswith("CMAKE_CXX_FLAGS_RELEASE:"):
                compiler += f" ({line.split('=', 1)[1]})"
        break
    so = Path(_core.__file__)
    try:
        so_id = (f"{so} sha256 {hashlib.sha256(so.read_bytes()).hexdigest()[:16]}, "
                 f"modified {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(so.stat().st_mtime))} UTC")
    except OSError:
        so_id = str(so)
    info = {
        "cpu": cpu,
        "core_so": so_id,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "core_build": compiler,
        "platform": platform.platform(),
    }
    if hbt_pkg is not None:
        import numba

        info["hftbacktest"] = hbt_pkg.__version__
        info["numba"] = numba.__version__
    return info


# ---- hftbacktest data --------------------------------------------------------------------------


def hbt_convert_files(paths, buffer_size: int):
    """hftbacktest's own converter, one call per file (that is its API)."""
    out = []
    with quiet_fd_stdout():
        for p in paths:
            out.append(hbt_binancefutures.convert(str(p), buffer_size=buffer_size))
    return out


def hbt_from_ours(events: np.ndarray, tick: float, lot: float) -> np.ndarray:
    """Translate our event array to hftbacktest's format (book and trade events; bookTicker is
    dropped), then run hftbacktest's own timestamp and ordering corrections."""
    kind = events["kind"]
    flags = events["flags"]
    exch = events["exch_ts"].copy()
    local = events["local_ts"]
    missing = exch == 0  # spot snapshots carry no exchange time: use the receive time
    exch[missing] = local[missing]
    side = np.where(flags & int(EventFlag.BID), BUY_EVENT, SELL_EVENT).astype(np.uint64)
    code = np.zeros(len(events), np.uint64)
    code[kind == EventKind.BOOK_SNAPSHOT] = DEPTH_SNAPSHOT_EVENT
    code[kind == EventKind.BOOK_DELTA] = DEPTH_EVENT
    code[kind == EventKind.TRADE] = TRADE_EVENT
    keep = code != 0
    rows = np.zeros(int(keep.sum()), HBT_EVENT_DTYPE)
    rows["ev"] = code[keep] | side[keep]
    rows["exch_ts"] = exch[keep]
    rows["local_ts"] = local[keep]
    rows["px"] = events["price"][keep] * tick
    rows["qty"] = events["qty"][keep] * lot
    # Each BOOK_CLEAR becomes a bid clear and an ask clear placed just before its snapshot levels,
    # clearing up to the snapshot's last level as hftbacktest's converter does.
    pos_in_rows = np.cumsum(keep) - 1
    pieces, start = [], 0
    for ci in np.flatnonzero(kind == EventKind.BOOK_CLEAR):
        at = int(pos_in_rows[ci]) + 1  # index in rows of the first event after the clear
        j = ci + 1
        while j < len(events) and kind[j] == EventKind.BOOK_SNAPSHOT:
            j += 1
        snap = events[ci + 1 : j]
        clears = np.zeros(2, HBT_EVENT_DTYPE)
        for k, (s_code, s_flag, pick) in enumerate(
            ((BUY_EVENT, EventFlag.BID, np.min), (SELL_EVENT, EventFlag.ASK, np.max))
        ):
            px = snap["price"][(snap["flags"] & int(s_flag)) != 0]
            clears[k] = (
                DEPTH_CLEAR_EVENT | s_code,
                exch[ci],
                local[ci],
                (pick(px) * tick) if len(px) else 0.0,
                0.0,
                0,
                0,
                0.0,
            )
        pieces += [rows[start:at], clears]
        start = at
    pieces.append(rows[start:])
    tmp = np.concatenate(pieces)
    with quiet_fd_stdout():
        tmp = correct_local_timestamp(tmp, 0)
        data = correct_event_order(
            tmp,
            np.argsort(tmp["exch_ts"], kind="mergesort"),
            np.argsort(tmp["local_ts"], kind="mergesort"),
        )
        validate_event_order(data)
    return data


def hbt_asset(arrays, tick: float, lot: float, roi=None):
    a = (
        BacktestAsset()
        .data(list(arrays))
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(tick)
        .lot_size(lot)
        .last_trades_capacity(0)
    )
    if roi is not None:
        a = a.roi_lb(roi[0]).roi_ub(roi[1])
    return a


# ---- the benchmark -----------------------------------------------------------------------------


def row(stage, impl, events, times, note=""):
    med = statistics.median(times)
    return {
        "stage": stage,
        "impl": impl,
        "events": int(events),
        "seconds": med,
        "min_seconds": min(times),
        "times": times,
        "events_per_s": events / med if med > 0 else float("inf"),
        "note": note,
    }


def bench_sequence(files, args) -> dict:
    name = sequence_name(files)
    paths = [f.path for f in files]
    market = files[0].instrument.market
    res = {"sequence": name, "market": market, "files": [str(p) for p in paths], "rows": [], "notes": []}

    # ---- conversion (ours from the raw paths: scanning and grouping included)
    def ours_convert():
        (seq,) = group_sequences(paths)
        return convert_sequence(seq)

    ours_conv = Timed(ours_convert)
    hbt_conv = None
    if HBT_ERROR is None and market != "spot" and args.hbt_source != "ours":
        hbt_conv = Timed(lambda: hbt_convert_files(paths, args.hbt_buffer))
        try:
            hbt_conv.fn()  # can it read these files at all?
        except Exception as exc:  # noqa: BLE001
            res["notes"].append(f"hftbacktest converter failed: {type(exc).__name__}: {exc}")
            hbt_conv = None
    time_interleaved([ours_conv] + ([hbt_conv] if hbt_conv else []), args.repeat)
    events, meta = ours_conv.result
    raw_lines = sum(meta["report"]["lines"].values())
    res["raw_lines"] = raw_lines
    res["rows"].append(row("conversion", "ours group_sequences + convert_sequence", len(events), ours_conv.times))
    ref_conv = Timed(lambda: convert_sequence(files, parse=binance_reference.parse_sequence))
    ref_conv.run()  # slow and not the product: once
    res["rows"].append(row("conversion", "ours, Python reference parser (1 run)", len(ref_conv.result[0]),
                           ref_conv.times))
    tick, lot = float(meta["tick_size"]), float(meta["lot_size"])

    hbt_arrays, hbt_path = None, None
    if HBT_ERROR is None:
        if hbt_conv is not None:
            hbt_arrays = hbt_conv.result
            n = sum(len(a) for a in hbt_arrays)
            res["rows"].append(row("conversion", "hftbacktest binancefutures.convert", n, hbt_conv.times))
            hbt_path = "hftbacktest's converter"
        if hbt_arrays is None:
            if market == "spot":
                # Show, don't assume, that its converter cannot read spot.
                try:
                    hbt_convert_files(paths[:1], args.hbt_buffer)
                    why = "it ran, but spot is not its format"
                except Exception as exc:  # noqa: BLE001
                    why = f"{type(exc).__name__}: {exc}"
                res["notes"].append(f"hftbacktest binancefutures.convert cannot read spot files ({why}); conversion n/a")
            hbt_arrays = [hbt_from_ours(events, tick, lot)]
            hbt_path = "our events translated to hftbacktest's format"
        res["notes"].append(f"hftbacktest replay input: {hbt_path}")

    # ---- replay
    ours_replay = Timed(lambda: _core.replay(events))
    ours_check = Timed(lambda: _core.check_tickers(events))
    replay_items = [(ours_replay, "ours _core.replay", len(events), "")]
    replay_items.append((ours_check, "ours _core.check_tickers", len(events), ""))
    _, book, _ = _core.sample_top(events, 1)
    ours_bbo = [int(x) for x in book[-1, 0]]  # bid px, bid qty, ask px, ask qty (ticks, lots)
    final = {}
    if hbt_arrays is not None:
        n_hbt = sum(len(a) for a in hbt_arrays)
        all_ts = np.concatenate([a[f][a[f] > 0] for a in hbt_arrays for f in ("exch_ts", "local_ts")])
        duration = int(all_ts.max() - all_ts.min()) + 1_000_000_000  # the whole period, and 1 s more
        trades = [a["px"][(a["ev"] & TRADE_EVENT) == TRADE_EVENT] for a in hbt_arrays]
        tp = np.concatenate(trades) if trades else np.array([])
        roi = (float(np.floor(tp.min() * 0.9)), float(np.ceil(tp.max() * 1.1))) if len(tp) else None

        def one_elapse(builder, roi_arg, label):
            def fn():
                bt = builder([hbt_asset(hbt_arrays, tick, lot, roi_arg)])  # setup, not timed
                t0 = time.perf_counter()
                r = bt.elapse(duration)
                dt = time.perf_counter() - t0
                if r != 1:
                    raise RuntimeError(f"{label}: elapse({duration}) returned {r}, not end of data")
                d = bt.depth(0)
                bb, ba = d.best_bid_tick, d.best_ask_tick
                # (ROIVectorMarketDepth.best_bid_qty returns the price in 2.4.4: use qty_at_tick)
                final[label] = [
                    int(bb),
                    round(d.bid_qty_at_tick(bb) / lot),
                    int(ba),
                    round(d.ask_qty_at_tick(ba) / lot),
                ]
                bt.close()
                return r, dt

            return fn

        def loop_elapse():
            bt = HashMapMarketDepthBacktest([hbt_asset(hbt_arrays, tick, lot)])
            t0 = time.perf_counter()
            steps, r = _elapse_loop(bt, STEP_NS)
            dt = time.perf_counter() - t0
            bt.close()
            return (steps, r), dt

        replay_items.append((Timed(one_elapse(HashMapMarketDepthBacktest, None, "hashmap")),
                             "hftbacktest HashMap, 1 elapse", n_hbt, f"elapse({duration} ns)"))
        if roi is not None:
            replay_items.append((Timed(one_elapse(ROIVectorMarketDepthBacktest, roi, "roivector")),
                                 "hftbacktest ROIVector, 1 elapse", n_hbt, f"roi {roi[0]:g}..{roi[1]:g}"))
        replay_items.append((Timed(loop_elapse), "hftbacktest HashMap, elapse 100ms loop", n_hbt,
                             "elapse(100 ms) until end of data, in numba"))

    time_interleaved([it[0] for it in replay_items], args.replay_repeat)
    for timed_fn, impl, n, note in replay_items:
        if impl.endswith("100ms loop"):
            note += f": {timed_fn.result[0]} calls"
        res["rows"].append(row("replay", impl, n, timed_fn.times, note))
    res["ours_replay_stats"] = ours_replay.result
    chk = ours_check.result
    res["ours_ticker_check"] = {k: chk[k] for k in ("tickers", "compared", "matched", "mismatched")}
    if final:
        res["final_bbo"] = {"ours": ours_bbo, **final}
        res["final_bbo_agree"] = all(v == ours_bbo for v in final.values())

    # ---- ratios: each of our rows against hftbacktest's fastest row of the same stage
    for stage in ("conversion", "replay"):
        theirs = [r for r in res["rows"] if r["stage"] == stage and r["impl"].startswith("hftbacktest")]
        if not theirs:
            continue
        best = min(theirs, key=lambda r: r["seconds"])
        for r in res["rows"]:
            if r["stage"] == stage and r["impl"].startswith("ours"):
                r["vs"] = best["impl"]
                r["ratio_events_per_s"] = r["events_per_s"] / best["events_per_s"]
                r["speedup_time"] = best["seconds"] / r["seconds"]
    ours_rp = next(r for r in res["rows"] if r["impl"] == "ours _core.replay")
    res["ours_replay_vs_each"] = {
        r["impl"]: {
            "ratio_events_per_s": ours_rp["events_per_s"] / r["events_per_s"],
            "speedup_time": r["seconds"] / ours_rp["seconds"],
        }
        for r in res["rows"]
        if r["stage"] == "replay" and r["impl"].startswith("hftbacktest")
    }
    for r in res["rows"]:
        r["raw_lines_per_s"] = raw_lines / r["seconds"] if r["seconds"] > 0 else float("inf")
    return res


def identity(paths) -> list[dict]:
    """C++ parser vs Python reference on every sequence of `paths`: events and meta identical?"""
    out = []
    for seq in group_sequences(paths):
        t0 = time.perf_counter()
        ev, meta = convert_sequence(seq)
        t1 = time.perf_counter()
        ev_r, meta_r = convert_sequence(seq, parse=binance_reference.parse_sequence)
        t2 = time.perf_counter()
        out.append({"sequence": sequence_name(seq), "files": [f.path.name for f in seq], "events": len(ev),
                    "identical_events": bool(ev.dtype == ev_r.dtype and np.array_equal(ev, ev_r)),
                    "identical_meta": meta == meta_r, "cpp_s": t1 - t0, "reference_s": t2 - t1})
    return out


def fmt_table(res: dict) -> str:
    head = ["stage", "implementation", "events", "seconds", "Mevents/s", "ev/s ratio", "time ratio"]
    lines = []
    for r in res["rows"]:
        lines.append(
            [
                r["stage"],
                r["impl"],
                f"{r['events']:,}",
                f"{r['seconds']:.4f}",
                f"{r['events_per_s'] / 1e6:.2f}",
                f"{r['ratio_events_per_s']:.2f}x" if "ratio_events_per_s" in r else "",
                f"{r['speedup_time']:.2f}x" if "speedup_time" in r else "",
            ]
        )
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    right = {2, 3, 4, 5, 6}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(l) for l in lines]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="+", default=[str(p) for p in DEFAULT_FILES],
                    help="raw feed files; grouped into sequences, each benchmarked on its own")
    ap.add_argument("--repeat", type=int, default=5,
                    help="timed runs per conversion row; the median is reported")
    ap.add_argument("--replay-repeat", type=int, default=None,
                    help="timed runs per replay row (fast, so more are cheap); default 3 x --repeat")
    ap.add_argument("--identity-files", nargs="*", default=[str(p) for p in IDENTITY_FILES],
                    help="raw files on which the C++ parser and the Python reference must agree "
                         "(default: every shared Binance file; none: skip)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    ap.add_argument("--hbt-source", choices=("auto", "ours"), default="auto",
                    help="hftbacktest replay input: its own converter where it can read the files "
                         "(auto), or our events translated to its format (ours)")
    ap.add_argument("--hbt-buffer", type=int, default=20_000_000,
                    help="buffer_size (rows) passed to hftbacktest's converter")
    args = ap.parse_args(argv)
    if args.replay_repeat is None:
        args.replay_repeat = 3 * args.repeat
    if args.repeat < 1 or args.replay_repeat < 1:
        ap.error("--repeat and --replay-repeat must be >= 1")

    if HBT_ERROR is not None:
        print(f"hftbacktest cannot be imported ({HBT_ERROR}); timing ours only.", file=sys.stderr)

    if args.identity_files and not args.json:
        print(f"... identity of C++ and Python reference on {len(args.identity_files)} file(s)", file=sys.stderr,
              flush=True)
    same = identity(args.identity_files) if args.identity_files else []
    seqs = group_sequences(args.files)
    results = {
        "identity": same,
        "date": time.strftime("%Y-%m-%d"),
        "repeat": args.repeat,
        "replay_repeat": args.replay_repeat,
        "load_average_at_start": os.getloadavg(),
        "statistic": "median",
        "jit_excluded": True,
        "machine": machine_info(),
        "hftbacktest_available": HBT_ERROR is None,
        "hftbacktest_import_error": HBT_ERROR,
        "sequences": [],
    }
    for files in seqs:
        if not args.json:
            print(f"... {sequence_name(files)} ({len(files)} file(s))", file=sys.stderr, flush=True)
        results["sequences"].append(bench_sequence(files, args))

    ok = all(r["identical_events"] and r["identical_meta"] for r in same)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0 if ok else 1

    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; Python {m['python']}; "
          f"numpy {m['numpy']}; core: {m['core_build']}")
    print(f"core: {m['core_so']}")
    if HBT_ERROR is None:
        print(f"hftbacktest {m['hftbacktest']} (numba {m['numba']}); JIT compile time excluded "
              "(one untimed warm-up run per row)")
    print(f"median of {args.repeat} runs (conversion) and {args.replay_repeat} runs (replay), "
          f"ours and hftbacktest interleaved; load average at start {results['load_average_at_start'][0]:.2f}.")
    if HBT_ERROR is None:
        print("ev/s ratio = ours events/s / hftbacktest events/s; "
              "time ratio = hftbacktest seconds / ours seconds (same raw input);")
        print("both against hftbacktest's fastest row of the same stage.")
    for s in results["sequences"]:
        print()
        print(f"== {s['sequence']}: {len(s['files'])} file(s), {s['raw_lines']:,} raw lines")
        print(fmt_table(s))
        for n in s["notes"]:
            print(f"  note: {n}")
        if "final_bbo_agree" in s:
            print(f"  final best bid/ask (ticks, lots) ours {s['final_bbo']['ours']}; "
                  f"hftbacktest agrees: {'yes' if s['final_bbo_agree'] else 'NO ' + str(s['final_bbo'])}")
        for impl, v in s["ours_replay_vs_each"].items():
            print(f"  ours _core.replay vs {impl}: ev/s ratio {v['ratio_events_per_s']:.2f}x, "
                  f"time ratio {v['speedup_time']:.2f}x")
        ck = s["ours_ticker_check"]
        print(f"  our bookTicker check: {ck['matched']}/{ck['compared']} matched")
    if same:
        print()
        print(f"== C++ parser vs Python reference: {sum(r['identical_events'] and r['identical_meta'] for r in same)} "
              f"of {len(same)} sequences identical (events and meta), {sum(len(r['files']) for r in same)} files")
        for r in same:
            print(f"  {r['sequence']}: {r['events']:,} events, events {'same' if r['identical_events'] else 'DIFFER'}, "
                  f"meta {'same' if r['identical_meta'] else 'DIFFERS'} (C++ {r['cpp_s']:.2f} s, "
                  f"reference {r['reference_s']:.2f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
