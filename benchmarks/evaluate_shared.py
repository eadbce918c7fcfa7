"""The walk-forward evaluation of issue 13 on the shared recordings: PPO with market orders and with
quotes, 5 seeds per fold, every baseline; one table for benchmarks/README.md.

    PYTHONPATH=python python3 benchmarks/evaluate_shared.py --shared ../shared/data --work runs/eval_shared \\
        [--cuda] [--jobs 16] [--seeds 5] [--total-timesteps 300000] [--num-envs 256]

Groups (sizes are in base units, so each instrument gets its own): BTC = Bitstamp BTC/USD 2015-05-01 (24 h),
Binance USD-M BTCUSDT 2024-07-18/19, spot BTCUSDT 2024-08-08/09, USD-M BTCUSDT 2024-08-08, as datasets in time
order (fold i trains on dataset i-1, tests on dataset i); ETH = USD-M ETHUSDT 07-18/19, spot ETHUSDT
08-08/09, USD-M ETHUSDT 08-08 likewise; NEXO = Binance spot NEXOUSDT 34 h cut into 5 blocks (4 folds).
COIN-M sequences are left out: their sizes are contracts of 100 / 10 USD, not base units.

`--train-window K` (K > 1) adds the mixed mode: every group's datasets (each cut to its first
--mixed-duration seconds, so that the 24 h and 34 h recordings do not outweigh the rest) in one list in
time order, fold i training on the K datasets before dataset i together, whatever their instrument, and
testing on dataset i; sizes in quote currency (--trade-notional, --max-position-notional: one size for
every instrument, per dataset in its own lots at its first mid) and feature set 2 (scale-free), so that
an agent trained on BTC and ETH reads and trades NEXO on the same footing (issue 13).

Both modes run with `trader train`'s defaults: the quote mode's are the quote recipe since session 15
(trader.rl.defaults.QUOTE_DEFAULTS, with its markout loss and inventory weights since session 34); its tables in
benchmarks/README.md ran before, with PPO's own.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

GROUPS = {
    "BTC": {"sources": [("bitstamp", ["bitstamp_btcusd_2015-05-01_l3_events_top20/2015-05-01.log.bz2"]),
                        ("binance", ["binance_hftbacktest_raw_feed/usdm/btcusdt_20240718.gz",
                                     "binance_hftbacktest_raw_feed/usdm/btcusdt_20240719.gz"]),
                        ("binance", ["binance_hftbacktest_raw_feed/spot/btcusdt_20240808.gz",
                                     "binance_hftbacktest_raw_feed/spot/btcusdt_20240809.gz"]),
                        ("binance", ["binance_hftbacktest_raw_feed/usdm/btcusdt_20240808.gz"])],
            "options": ["--trade-size", "0.01", "--max-position", "0.1"]},
    "ETH": {"sources": [("binance", ["binance_hftbacktest_raw_feed/usdm/ethusdt_20240718.gz",
                                     "binance_hftbacktest_raw_feed/usdm/ethusdt_20240719.gz"]),
                        ("binance", ["binance_hftbacktest_raw_feed/spot/ethusdt_20240808.gz",
                                     "binance_hftbacktest_raw_feed/spot/ethusdt_20240809.gz"]),
                        ("binance", ["binance_hftbacktest_raw_feed/usdm/ethusdt_20240808.gz"])],
            "options": ["--trade-size", "0.1", "--max-position", "1"]},
    "NEXO": {"sources": [("binance", ["binance_spot_nexousdt_raw_feed/nexousdt_20240723.dat.gz",
                                      "binance_spot_nexousdt_raw_feed/nexousdt_20240724.dat.gz",
                                      "binance_spot_nexousdt_raw_feed/nexousdt_20240725.dat.gz"])],
             "options": ["--trade-size", "100", "--max-position", "1000", "--folds", "4"]},
}


def convert(shared: Path, work: Path, name: str, fmt: str, files: list[str], duration_s: float | None = None) -> list[str]:
    """The dataset folders of one source (a collection's parts when the converter splits it); with
    duration_s, each sequence's first duration_s seconds (into WORK/data_<duration_s>s)."""
    from trader.data.cli import data

    out = work / ("data" if duration_s is None else f"data_{duration_s:g}s") / name
    if not (out / "meta.json").exists() and not (out / "index.json").exists():
        extra = [] if duration_s is None else ["--duration", str(duration_s)]
        data.main(["convert", *[str(shared / f) for f in files], "-o", str(out), "--format", fmt, *extra],
                  standalone_mode=False)
    if (out / "index.json").exists():
        from trader.data.dataset import load_collection

        return [str(p.path) for p in load_collection(out)]
    return [str(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--work", type=Path, default=Path("runs/eval_shared"))
    ap.add_argument("--groups", default=",".join(GROUPS))
    ap.add_argument("--modes", default="discrete,quote")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--total-timesteps", type=int, default=300_000)
    ap.add_argument("--num-envs", type=int, default=256)
    ap.add_argument("--horizon", type=int, default=500)
    ap.add_argument("--cuda", action="store_true")
    ap.add_argument("--train-window", type=int, default=1,
                    help="> 1: also the mixed mode, folds that train on this many datasets of any instrument")
    ap.add_argument("--mixed-only", action="store_true", help="only the mixed mode (not the per-group evaluations)")
    ap.add_argument("--mixed-duration", type=float, default=3600.0, help="mixed mode: seconds kept of each sequence")
    ap.add_argument("--trade-notional", type=float, default=200.0, help="mixed mode: quote currency per order")
    ap.add_argument("--max-position-notional", type=float, default=2000.0, help="mixed mode: position limit, quote")
    a = ap.parse_args()
    from trader.evaluate.cli import evaluate

    rows = []
    t_all = time.perf_counter()
    common = ["--seeds", str(a.seeds), "--jobs", str(a.jobs), "--allow-overlap", "--total-timesteps",
              str(a.total_timesteps), "--num-envs", str(a.num_envs), "--horizon", str(a.horizon), "--no-progress-bar",
              "--cuda" if a.cuda else "--no-cuda"]

    def run(group: str, mode: str, paths: list[str], options: list[str]) -> None:
        out = a.work / f"{group}_{mode}"
        t0 = time.perf_counter()
        evaluate.main([x for p in paths for x in ("--data", p)] + options + common + ["--actions", mode, "--out", str(out)],
                      standalone_mode=False)
        report = json.loads((out / "evaluation.json").read_text())
        rows.append({"group": group, "mode": mode, "folds": len(report["summary"]["folds"]),
                     "wall_s": time.perf_counter() - t0, **report["summary"]["overall"]})

    groups = a.groups.split(",")
    for group in [] if a.mixed_only else groups:
        paths = [p for i, (fmt, files) in enumerate(GROUPS[group]["sources"])
                 for p in convert(a.shared, a.work, f"{group}_{i}", fmt, files)]
        for mode in a.modes.split(","):
            run(group, mode, paths, GROUPS[group]["options"])
    if a.train_window > 1:
        from trader.data.dataset import load_dataset

        paths = [p for group in groups for i, (fmt, files) in enumerate(GROUPS[group]["sources"])
                 for p in convert(a.shared, a.work, f"{group}_{i}", fmt, files, a.mixed_duration)]
        first_ts = {p: int(load_dataset(p).events["local_ts"][0]) for p in paths}
        paths.sort(key=first_ts.get)  # time order across instruments
        for mode in a.modes.split(","):
            run(f"mixed_window{a.train_window}", mode, paths, [
                "--train-window", str(a.train_window), "--feature-set", "2", "--trade-notional",
                str(a.trade_notional), "--max-position-notional", str(a.max_position_notional)])
    print(f"\n## Walk-forward evaluation on the shared data ({time.perf_counter() - t_all:.0f} s)\n")
    print("| group | actions | folds | agent (bps of max notional, sum over folds; mean [95 % CI] over seeds) | "
          "best baseline | agent - best [95 % CI] | seeds > flat | seeds > every baseline | wall s |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        ag, d = r["agent"], r["agent_minus_best_baseline"]
        ci = lambda x: f"{x['mean']:+.2f} [{x['low']:+.2f}, {x['high']:+.2f}]" if x["low"] is not None else f"{x['mean']:+.2f}"  # noqa: E731
        print(f"| {r['group']} | {r['mode']} | {r['folds']} | {ci(ag)} | {r['best_baseline']} "
              f"({r['baselines'][r['best_baseline']]:+.2f}) | {ci(d)} | {r['seeds_beating_flat']:.0%} | "
              f"{r['seeds_beating_every_baseline']:.0%} | {r['wall_s']:.0f} |")
    (a.work / "table.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
