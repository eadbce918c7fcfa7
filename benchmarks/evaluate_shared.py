"""The walk-forward evaluation of issue 13 on ../shared/data: every Binance BTC and ETH sequence,
NEXOUSDT 34 h and Bitstamp BTC/USD 24 h, each cut into blocks (train on the past blocks, test on the
next: `trader evaluate --split blocks`), PPO with market orders and with quotes, several seeds per fold.

    PYTHONPATH=python python3 benchmarks/evaluate_shared.py --device cuda --jobs 16

One `trader evaluate` report per dataset and action space under --out (evaluation.md, .json, plots);
the agents of all of them train in one pool of --jobs processes. Prints and writes (OUT/table.md) the
table for benchmarks/README.md: per dataset and action space the agent's mean net PnL in bps of the
notional the position limit allows, with its 95 % bootstrap interval, the best baseline's, agent minus
the best baseline, and the share of agents beating flat; then over all datasets (two-stage bootstrap
over folds and seeds). Sizes differ by instrument: each dataset trades about --notional quote per order
and ten orders at most (rounded to its lot), so the bps columns compare across instruments.

Multi-dataset training (one agent over several datasets) is not in the env yet, so folds are blocks
within each dataset; `--split datasets` of trader evaluate takes over once it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def sequences(shared: Path) -> dict[str, tuple[list[Path], str]]:
    """name -> (raw files of one sequence, converter format) under the shared data folder."""
    raw = shared / "binance_hftbacktest_raw_feed"
    pair = lambda market, sym, days: [raw / f"{market}/{sym}_{d}.gz" for d in days]  # noqa: E731
    return {
        "spot_btcusdt_0808": (pair("spot", "btcusdt", ("20240808", "20240809")), "binance"),
        "spot_ethusdt_0808": (pair("spot", "ethusdt", ("20240808", "20240809")), "binance"),
        "usdm_btcusdt_0718": (pair("usdm", "btcusdt", ("20240718", "20240719")), "binance"),
        "usdm_ethusdt_0718": (pair("usdm", "ethusdt", ("20240718", "20240719")), "binance"),
        "usdm_btcusdt_0808": (pair("usdm", "btcusdt", ("20240808",)), "binance"),
        "usdm_ethusdt_0808": (pair("usdm", "ethusdt", ("20240808",)), "binance"),
        "cm_btcusd_perp_0808": (pair("cm", "btcusd_perp", ("20240808", "20240809")), "binance"),
        "cm_ethusd_perp_0808": (pair("cm", "ethusd_perp", ("20240808", "20240809")), "binance"),
        "spot_nexousdt_34h": (sorted((shared / "binance_spot_nexousdt_raw_feed").glob("*.gz")), "binance"),
        "bitstamp_btcusd_24h": ([shared / "bitstamp_btcusd_2015-05-01_l3_events_top20/2015-05-01.log.bz2"], "bitstamp"),
    }


NAMES = list(sequences(Path(".")))


def convert(shared: Path, cache: Path, names: list[str]) -> dict[str, Path]:
    """Each sequence converted once into cache/NAME (kept between runs)."""
    from trader.cli import main

    out = {}
    for name in names:
        files, fmt = sequences(shared)[name]
        missing = [f for f in files if not f.exists()]
        if missing or not files:
            sys.exit(f"{name}: raw files not found under --shared {shared}: {missing or 'none'}")
        target = cache / name
        if not (target / "meta.json").is_file():
            res = CliRunner().invoke(main, ["data", "convert", *map(str, files), "--format", fmt, "-o", str(target)])
            if res.exit_code != 0:
                sys.exit(f"{name}: trader data convert failed:\n{res.output}")
        out[name] = target
    return out


def sizes(data: Path, notional: float) -> tuple[float, float]:
    """(trade_size, max_position) in base units: about `notional` quote per order at the first mid,
    rounded to the lot (at least one), and ten orders at most."""
    from trader.evaluate.run import book_market

    m = book_market(data)
    mid = 0.5 * (m.book[0, 0, 0] + m.book[0, 0, 2]) * m.tick_size
    lot = Decimal(str(m.lot_size))
    lots = max(1, round(notional / mid / m.lot_size))
    trade = float(lot * lots)
    return trade, float(lot * lots * 10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="agents trained at once, one process each")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--folds", type=int, default=2, help="test blocks per dataset")
    p.add_argument("--timesteps", type=int, default=50_000, help="env steps per agent")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--horizon", type=int, default=500, help="steps per training episode")
    p.add_argument("--actions", nargs="+", default=["discrete", "quote"], choices=["discrete", "continuous", "quote"])
    p.add_argument("--datasets", nargs="+", default=NAMES, choices=NAMES)
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data", help="the shared recordings")
    p.add_argument("--notional", type=float, default=1000.0, help="quote currency per order (sizes per instrument)")
    p.add_argument("--taker-fee-bps", type=float, default=1.0)
    p.add_argument("--maker-fee-bps", type=float, default=0.0)
    p.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "evaluate_shared")
    p.add_argument("--out", type=Path, default=Path("evaluations") / f"shared__{int(time.time())}")
    a = p.parse_args()

    from tqdm import tqdm

    from trader.evaluate.evaluation import Evaluation, EvaluationError
    from trader.evaluate.run import run_jobs
    from trader.evaluate.stats import bootstrap_mean
    from trader.rl.cli import train

    fee_flag = next(q.name for q in train.params if q.name in ("fee_bps", "taker_fee_bps"))
    t0 = time.time()
    data = convert(a.shared, a.cache, a.datasets)
    t_convert = time.time() - t0
    evals, refused = {}, {}
    for name, path in data.items():
        trade, limit = sizes(path, a.notional)
        for actions in a.actions:
            opts = {"total_timesteps": a.timesteps, "num_envs": a.num_envs, "horizon": a.horizon, "actions": actions,
                    fee_flag: a.taker_fee_bps, "maker_fee_bps": a.maker_fee_bps, "trade_size": trade,
                    "max_position": limit}
            try:
                evals[name, actions] = Evaluation.plan(
                    [path], split="blocks", folds=a.folds, gap=0, seeds=a.seeds, base_seed=1, algo="ppo", options=opts,
                    config=None, device=a.device, out_dir=a.out / f"{name}__{actions}")
            except EvaluationError as e:
                refused[name, actions] = str(e)
    tested = _baselines(evals, refused, a.jobs)
    evals = {k: v for k, v in evals.items() if k in tested}
    jobs = [j for ev in evals.values() for j in ev.jobs]
    # the longest test blocks first, so that no long job starts last
    order = sorted(range(len(jobs)), key=lambda i: -(jobs[i].fold.test_end - jobs[i].fold.test_start))
    t1 = time.time()
    with tqdm(total=len(jobs), desc="folds x seeds, all datasets", unit="agent") as bar:
        done = run_jobs([jobs[i] for i in order], a.jobs, bar.update)
    t_agents = time.time() - t1
    results = [None] * len(jobs)
    for i, r in zip(order, done):
        results[i] = r
    results = iter(results)
    docs = {key: ev.report([next(results) for _ in ev.jobs], tested[key], a.jobs) for key, ev in evals.items()}
    table = _table(docs, refused, a, bootstrap_mean)
    table += ["", f"Wall time: {time.time() - t0:.0f} s (conversion {t_convert:.0f} s, agents {t_agents:.0f} s for "
              f"{len(jobs)} agents in {a.jobs} processes, device {a.device})."]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "table.md").write_text("\n".join(table) + "\n")
    (a.out / "summary.json").write_text(json.dumps({f"{k[0]}__{k[1]}": d["overall"] for k, d in docs.items()}, indent=2))
    print("\n".join(table))
    print(f"\nreports in {a.out}/<dataset>__<actions>/evaluation.md; table in {a.out}/table.md")


def _baselines(evals: dict, refused: dict, workers: int) -> dict:
    """Every fold's baselines, `workers` folds at once; (results, contexts) per evaluation; the
    evaluations whose baselines fail go to `refused`."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from trader.evaluate.evaluation import EvaluationError, tested_baselines

    tasks = [(key, f, ev.env_config) for key, ev in evals.items() for f in ev.folds]
    out: dict = {}
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(tested_baselines, f, cfg) for _, f, cfg in tasks]
        for (key, _, _), future in tqdm(zip(tasks, futures), total=len(tasks), desc="baselines", unit="fold"):
            try:
                results, ctx = future.result()
            except EvaluationError as e:
                refused[key] = str(e)
                continue
            out.setdefault(key, ([], []))
            out[key][0].append(results)
            out[key][1].append(ctx)
    return {k: v for k, v in out.items() if k not in refused}


def _table(docs: dict, refused: dict, a, bootstrap_mean) -> list[str]:
    key = "pnl_bps_of_max_notional"
    ci = lambda d: "n/a" if d is None else f"{d['mean']:+.2f} [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}]"  # noqa: E731
    lines = [f"Command: `PYTHONPATH=python python3 benchmarks/evaluate_shared.py --device {a.device} --jobs {a.jobs} "
             f"--seeds {a.seeds} --folds {a.folds} --timesteps {a.timesteps}`; PPO, {a.timesteps:,} env steps per agent, "
             f"taker fee {a.taker_fee_bps:g} bps, maker fee {a.maker_fee_bps:g} bps, ~{a.notional:g} quote per order, "
             "10 orders max. Net PnL in bps of max notional, mean [95 % bootstrap CI].", "",
             "| dataset | actions | folds x seeds | agent | best baseline (per fold) | agent - best baseline | "
             "agents beating flat |", "|---|---|---:|---:|---:|---:|---:|"]
    pooled: dict[str, list] = {}
    for (name, actions), doc in docs.items():
        o = doc["overall"]
        best = np.mean([f["summary"]["baselines"][f["summary"]["best_baseline"][key]][key] for f in doc["folds"]])
        lines.append(f"| {name} | {actions} | {o['folds']} x {o['seeds']} | {ci(o['agent'][key])} | {best:+.2f} | "
                     f"{ci(o['agent_minus_best_baseline'][key])} | {o['beat_flat']:.0%} |")
        for f in doc["folds"]:
            agents = [x[key] for x in f["agents"]]
            bestf = f["summary"]["baselines"][f["summary"]["best_baseline"][key]][key]
            pooled.setdefault(actions, []).append((agents, [x - bestf for x in agents],
                                                   [x["pnl_quote"] > f["summary"]["baselines"]["flat"]["pnl_quote"]
                                                    for x in f["agents"]]))
    for actions, folds in pooled.items():
        agent = bootstrap_mean(np.array([f[0] for f in folds])).as_dict()
        diff = bootstrap_mean(np.array([f[1] for f in folds])).as_dict()
        beat = float(np.mean([f[2] for f in folds]))
        lines.append(f"| **all datasets** | {actions} | {len(folds)} x {a.seeds} | {ci(agent)} | | {ci(diff)} | "
                     f"{beat:.0%} |")
    for (name, actions), why in refused.items():
        lines.append(f"| {name} | {actions} | refused | {why} | | | |")
    return lines


if __name__ == "__main__":
    main()
