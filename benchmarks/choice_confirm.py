"""Issue 13: does choosing among seeds on validation (`trader evaluate --validation-s S --choose-among K`,
trader.evaluate.choose) hold on rows no evaluation has tested? Session 7 found it on the held-out last 6 h
of NEXOUSDT only; this runs the same method, unchanged (3 h of validation, best of 4, 20 seeds, the
candidate and sizes of benchmarks/oos_goal.py), walk-forward over recordings whose rows were never a test
block: NEXOUSDT's first 28 h (everything before that held-out tail) and Bitstamp BTC/USD's first 18 h
(everything before its held-out tail; on its own 2 s book spacing), and over any dataset given with --data.

    PYTHONPATH=python OMP_NUM_THREADS=1 python3 benchmarks/choice_confirm.py --work runs/confirm --jobs 2
    PYTHONPATH=python python3 benchmarks/choice_confirm.py --data DIR --venue binance_usdm --folds 3   # yours

Every run is one `trader evaluate` command (printed, and its report kept in WORK/<run>/); a run whose
evaluation.json exists is read, not run again. Writes WORK/choice_confirm.md and .json: per run, the
chosen agents' net PnL (bps of max notional, summed over folds; mean over the groups with a 95 % bootstrap
interval), the same for every seed unchosen, the best baseline, the chosen minus the best baseline, and the
correlation over seeds of validation and test PnL per fold.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from oos_goal import CANDIDATES, FEES, options_of
from sweep_defaults import _ci

# name -> (converter format, files under the shared data, --duration s: the rows before oos_goal.py's held-out
# 6 h tail, less 5 minutes, as its heads; walk-forward folds; --interval-ms; venue)
PRESETS = {
    "nexo28h": ("binance", ["binance_spot_nexousdt_raw_feed/nexousdt_20240723.dat.gz",
                            "binance_spot_nexousdt_raw_feed/nexousdt_20240724.dat.gz",
                            "binance_spot_nexousdt_raw_feed/nexousdt_20240725.dat.gz"], 101_223, 4, 100.0, "binance_spot"),
    "bitstamp18h": ("bitstamp", ["bitstamp_btcusd_2015-05-01_l3_events_top20/2015-05-01.log.bz2"], 64_500, 3, 2000.0,
                    "bitstamp"),
}
# (preset, candidate, fee schedule) run by default, in this order
RUNS = [("nexo28h", "quote_dampened", "low"), ("nexo28h", "quote_dampened", "vip0"),
        ("bitstamp18h", "quote_dampened", "low"), ("bitstamp18h", "quote_dampened", "vip0"),
        ("bitstamp18h", "market_rs10", "low")]


def convert(shared: Path, work: Path, name: str) -> str:
    from trader.data.cli import data

    fmt, files, seconds, *_ = PRESETS[name]
    out = work / "data" / f"{name}_first_{seconds}s"
    if not (out / "meta.json").exists():
        data.main(["convert", *[str(shared / f) for f in files], "-o", str(out), "--format", fmt, "--duration",
                   str(seconds)], standalone_mode=False)
    return str(out)


def evaluate(work: Path, run: str, data: str | list[str], folds: int | None, seeds: int, config: Path, jobs: int,
             interval_ms: float | None, extra: list[str] = ()) -> None:
    """One `trader evaluate` into WORK/RUN (its output in WORK/RUN.log), the command and its time printed
    (--resume: the jobs a killed run of it finished there are taken back);
    `data` one dataset cut into `folds` + 1 blocks, or several in time order (folds None: one per dataset
    after the first)."""
    datas = [data] if isinstance(data, str) else list(data)
    cmd = [sys.executable, "-m", "trader.cli", "evaluate", *[x for d in datas for x in ("--data", d)],
           *(["--folds", str(folds)] if folds else []), "--seeds",
           str(seeds), "--config", str(config), "--jobs", str(jobs), "--no-progress-bar", "--out", str(work / run),
           *(["--interval-ms", str(interval_ms)] if interval_ms else []), "--resume", *extra]
    print(" ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(work / f"{run}.log", "a") as log:  # a killed run goes on (--resume) and its log too
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(f"{run}: {time.perf_counter() - t0:.0f} s", flush=True)


def test_blocks(report: dict) -> list[tuple[int, str, int, int, int]]:
    """(fold, test dataset, first and last test row, training rows) of each fold of an evaluation.json."""
    out = []
    for i, fold in enumerate(report["context"]["folds"], start=1):
        data, start, end = re.search(r"test (\S+) rows (\d+)\.\.(\d+)", fold["describe"]).groups()
        last_train = re.search(r"train \S+ rows \d+\.\.(\d+)", fold["describe"]).group(1)
        out.append((i, data, int(start), int(end), int(last_train) + 1))
    return out


def summary(folder: Path) -> dict:
    """The chosen agents and every seed unchosen, from one `trader evaluate --validation-s` report."""
    import numpy as np

    from trader.evaluate.stats import bootstrap_mean

    report = json.loads((folder / "evaluation.json").read_text())
    overall, choice = report["summary"]["overall"], report["context"]["choice"]
    best = overall["best_baseline"]
    every = {}  # seed -> test PnL summed over folds (every seed, unchosen)
    for fold in choice["folds"]:
        for seed, metrics in fold["test"].items():
            every[seed] = every.get(seed, 0.0) + metrics["pnl_bps_of_max_notional"]
    unchosen = list(every.values())
    return {
        "chosen": overall["agent"], "chosen_minus_best": overall["agent_minus_best_baseline"],
        "every_seed": bootstrap_mean(unchosen)._asdict(),
        "every_seed_minus_best": bootstrap_mean(np.array(unchosen) - overall["baselines"][best])._asdict(),
        "best_baseline": best, "baselines": overall["baselines"],
        "correlations": [f["correlation"] for f in choice["folds"]], "groups": overall["agent"]["n"],
        "seeds": len(unchosen), "wall_s": report["context"]["wall_s"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--work", type=Path, default=Path("runs") / "choice_confirm")
    p.add_argument("--data", type=Path, default=None, help="your dataset instead of the presets (with --venue)")
    p.add_argument("--venue", choices=sorted(next(iter(FEES.values()))), default="binance_spot",
                   help="--data: whose fee schedules apply")
    p.add_argument("--folds", type=int, default=3, help="--data: walk-forward folds")
    p.add_argument("--interval-ms", type=float, default=None, help="--data: the rows' spacing [default: evaluate's]")
    p.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=["quote_dampened"],
                   help="--data: candidates (oos_goal.py's)")
    p.add_argument("--schedules", nargs="+", choices=list(FEES), default=list(FEES), help="--data: fee schedules")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--choose-among", type=int, default=4)
    p.add_argument("--validation-s", type=float, default=3 * 3600)
    p.add_argument("--timesteps", type=int, default=40_000, help="env steps per agent")
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.data is not None:
        plan = [(a.data.name, str(a.data), a.folds, a.interval_ms, a.venue, c, s)
                for c in a.candidates for s in a.schedules]
    else:
        plan = [(name, convert(a.shared, a.work, name), *PRESETS[name][3:], c, s) for name, c, s in RUNS]
    rows = []
    for name, data, folds, interval_ms, venue, cand, schedule in plan:
        run = f"{name}__{cand}__{schedule}"
        out = a.work / run
        if not (out / "evaluation.json").exists():
            config = a.work / f"{cand}__{venue}__{schedule}.json"
            config.write_text(json.dumps(options_of(cand, schedule, venue, a.timesteps), indent=1))
            evaluate(a.work, run, data, folds, a.seeds, config, a.jobs, interval_ms,
                     ["--validation-s", str(a.validation_s), "--choose-among", str(a.choose_among)])
        rows.append({"run": run, "data": data, "candidate": cand, "fees": schedule, **summary(out)})
    lines = [
        "# Choosing among seeds on validation, on rows never tested (`benchmarks/choice_confirm.py`)", "",
        f"{a.seeds} seeds per fold, the best of {a.choose_among} on the last {a.validation_s / 3600:g} h before each "
        "test block; net PnL summed over folds, bps of max notional, mean [95 % bootstrap CI] (chosen: over the "
        "groups; every seed: over the seeds).", "",
        "| run | chosen | chosen - best baseline | every seed | every seed - best baseline | best baseline | "
        "correlation val/test per fold | wall |", "|---|---:|---:|---:|---:|---|---|---:|",
        *[f"| {r['run']} | {_ci(r['chosen'])} | {_ci(r['chosen_minus_best'])} | {_ci(r['every_seed'])} | "
          f"{_ci(r['every_seed_minus_best'])} | {r['best_baseline']} {r['baselines'][r['best_baseline']]:+.1f} | "
          + ", ".join("n/a" if c is None else f"{c:+.2f}" for c in r["correlations"]) + f" | {r['wall_s']:.0f} s |"
          for r in rows]]
    (a.work / "choice_confirm.md").write_text("\n".join(lines) + "\n")
    (a.work / "choice_confirm.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
