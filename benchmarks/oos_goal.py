"""Issue 13's goal at the venues' own fees: choose an agent configuration on selection folds only, then
confirm the chosen one once on held-out recordings (named below before any number on them was seen).

    PYTHONPATH=python OMP_NUM_THREADS=1 python3 benchmarks/oos_goal.py --shared ./shared/data --work runs/oos \\
        --jobs 16 --out "$OUT"

Fees (per dataset, from its venue; a fold trains and tests at the fees of the venue it tests on):
- `vip0`: what an account without volume discounts pays, as published by the venue: Binance spot 10 bps
  maker / 10 bps taker (0.1 %), Binance USD-M futures 2 / 5 bps (0.02 % / 0.05 %), Bitstamp in 2015
  25 / 25 bps (0.25 % below 20,000 USD of 30-day volume, no maker / taker split then).
- `low`: the env's default 0 / 1 bps, the costs every earlier evaluation used (close to Binance USD-M's
  top tier, 0 / 1.7 bps): what a high-volume market maker pays.

Candidates (CANDIDATES; issue 13's directions a and c): market orders with reward scale 10 (session 4's
best), quotes (post-only resting orders, maker fee, queue position) with the inventory-penalty or the
dampened-PnL reward of Spooner et al. 2018, and both trained 25x longer on 64 envs. Feature set 2 and
sizes in quote currency (200 / 2,000) throughout.

Selection: the 5 walk-forward folds of the defaults sweep (benchmarks/sweep_defaults.py: 7 Binance
datasets of BTC, ETH, NEXO in time order, each fold trains on the 2 before its test dataset), --seeds
seeds. Every strategy is judged against every baseline (flat, buy-and-hold, order imbalance, fixed-spread
quoter, Avellaneda-Stoikov 2008) on the same fold and fees. Per fee schedule the chosen candidate is the
one with the highest lower 95 % bound of agent minus the best baseline (summed over folds, bps of max
notional), ties by the mean, among those that trade in at least half the tests (a candidate that stays
flat cannot win by not losing); when none trades, the best by the same order, flagged.

Held out (HELD_OUT, named before this script first ran; no choice of any session was tested on these
rows): the last 6 h of Binance spot NEXOUSDT (2024-07-24 19:51 to 2024-07-25 01:51 UTC) and the last 6 h
of Bitstamp BTC/USD 2015-05-01 (18:00 to 24:00 UTC), each cut into --held-out-folds test blocks (2 of
3 h); fold i trains on every row of the recording before its test block (expanding window) and tests on
it, --held-out-seeds seeds. The goal: agent minus the best baseline with its 95 % interval above zero.

--encoder (with --confirm): the agents observe the embeddings of an encoder instead of the book features
(issue 13's encoder in the loop); the encoder is trained by `trader train-encoder` (ENCODER_ARGS) on each
held-out recording's rows before its first test block only, so no test row reaches it, as none reaches
the agents.

--validation-s S --choose-among K (with --confirm): the agents train without the last S seconds before each
test block and are backtested on those seconds too; in each fold the seeds form groups of K and each group
keeps the seed with the best PnL there (one group, one seed of the result). No test row is trained on or
chosen with.

Writes into --out at most 3 files: oos_goal.md (the tables), oos_goal.json (every summary) and
oos_goal.log (progress).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sweep_defaults import (BEFORE_QUOTE_DEFAULTS, DATASETS, MAX_NOTIONAL, TRADE_NOTIONAL, _ci, convert_all,
                            trading_share)

# maker, taker fee in bps of notional per venue and schedule (see the module docstring)
FEES = {
    "vip0": {"binance_spot": (10.0, 10.0), "binance_usdm": (2.0, 5.0), "bitstamp": (25.0, 25.0)},
    "low": {"binance_spot": (0.0, 1.0), "binance_usdm": (0.0, 1.0), "bitstamp": (0.0, 1.0)},
}
VENUES = {name: "binance_usdm" if "usdm" in name else "binance_spot" for name, _, _ in DATASETS}

BASE = {"learning_rate": 2.5e-4, "ent_coef": 0.01, "horizon": 500, "num_envs": 4, "feature_set": 2,
        **BEFORE_QUOTE_DEFAULTS}
LONG = {"num_envs": 64, "timesteps_factor": 25}  # 64 envs x 128 steps: 122 PPO updates in 1 M steps
CANDIDATES = {
    "market_rs10": {"actions": "discrete", "reward": "pnl", "reward_scale": 10.0},
    "quote_inventory_penalty": {"actions": "quote", "reward": "inventory_penalty", "reward_scale": 10.0},
    "quote_dampened": {"actions": "quote", "reward": "dampened", "reward_scale": 10.0},
    "market_rs10_long": {"actions": "discrete", "reward": "pnl", "reward_scale": 10.0, **LONG},
    "quote_dampened_long": {"actions": "quote", "reward": "dampened", "reward_scale": 10.0, **LONG},
}
# (name, converter format, files, venue, seconds at the end of the recording held out)
HELD_OUT = [
    ("nexo_spot_34h", "binance", ["binance_spot_nexousdt_raw_feed/nexousdt_20240723.dat.gz",
                                  "binance_spot_nexousdt_raw_feed/nexousdt_20240724.dat.gz",
                                  "binance_spot_nexousdt_raw_feed/nexousdt_20240725.dat.gz"], "binance_spot", 6 * 3600),
    ("bitstamp_btcusd_20150501", "bitstamp", ["bitstamp_btcusd_2015-05-01_l3_events_top20/2015-05-01.log.bz2"],
     "bitstamp", 6 * 3600),
]


def options_of(name: str, schedule: str, venue: str, timesteps: int) -> dict:
    """The learner and env options of one candidate at one venue's fees."""
    c = {**BASE, **CANDIDATES[name]}
    maker, taker = FEES[schedule][venue]
    return {**{k: v for k, v in c.items() if k != "timesteps_factor"}, "maker_fee_bps": maker, "taker_fee_bps": taker,
            "trade_notional": TRADE_NOTIONAL, "max_position_notional": MAX_NOTIONAL, "cuda": False,
            "total_timesteps": timesteps * c.get("timesteps_factor", 1)}


# trader train-encoder's arguments for --encoder: issue 14's model and inputs (benchmarks/README.md, "Ours beats
# the OFI logistic regression on every held-out dataset"), at most 3 epochs of 100 steps, one seed.
ENCODER_ARGS = ["--model", "tcn", "--inputs", "of+ofi+trend", "--skip", "--epochs", "3", "--patience", "2",
                "--max-steps-per-epoch", "100", "--seeds", "0"]


def head_of(shared: Path, work: Path, name: str, files: list[str], fmt: str, ts, first_test_row: int) -> str:
    """The recording's rows before its first held-out test block, as a dataset folder of its own (converted
    again with --duration, 5 minutes short: the converter counts from the first event, rows from the first
    book), checked to end before that block."""
    from trader.data.cli import data
    from trader.sim import load_market

    seconds = round((int(ts[first_test_row]) - int(ts[0])) / 1e9 - 300)
    head = work / "data" / f"{name}_first_{seconds}s"  # named by its cut: another --held-out-s, another head
    if not (head / "meta.json").exists():
        data.main(["convert", *[str(shared / f) for f in files], "-o", str(head), "--format", fmt, "--duration",
                   str(seconds)], standalone_mode=False)
    end = int(load_market(str(head), feature_set=2).ts[-1])
    if end >= int(ts[first_test_row]):
        raise SystemExit(f"{head}: ends at {end} ns, inside the held-out rows (from {int(ts[first_test_row])} ns)")
    return str(head)


def train_encoder(work: Path, heads: list[str], data_rows: dict[str, int], log, interval_ms: float | None = None) -> str:
    """trader train-encoder on the heads only (ENCODER_ARGS), once into WORK/encoder/<heads>, on rows every
    `interval_ms` (default: train's); then the embeddings of every dataset the agents train and test on
    (data_rows: its rows on that grid), cached before their processes start. Returns the model."""
    from trader.nn.cli import train_encoder as command
    from trader.nn.embed import agent_features
    from trader.rl.args import CommonArgs

    interval_ms = interval_ms or CommonArgs.interval_ms
    out = work / "encoder" / "+".join(Path(h).name for h in heads)
    model = out / "tcn" / "best"
    if not (model / "config.json").exists():
        log(f"encoder: trader train-encoder on {', '.join(heads)}")
        command.main([*[x for h in heads for x in ("--data", h)], *ENCODER_ARGS, "--interval-ms", str(interval_ms),
                      "--out", str(out)], standalone_mode=False)
    for d, rows in data_rows.items():
        log(f"encoder: embeddings of {d}")
        agent_features(str(model), d, interval_ms=interval_ms, rows=rows)
    return str(model)


def moves_table(paths: list[str]) -> list[str]:
    """Per selection dataset: its median spread and mean absolute mid move over 1, 10 and 60 s, in bps,
    beside a VIP 0 round trip (two fills) at its venue: what any strategy has to beat."""
    import numpy as np

    from trader.sim import load_market

    lines = ["| dataset | minutes | median spread | mean abs mid move 1 s / 10 s / 60 s | VIP 0 round trip maker / "
             "taker |", "|---|---:|---:|---:|---:|"]
    for path in paths:
        m = load_market(path, feature_set=2)
        bid, ask = m.book[:, 0, 0].astype(float), m.book[:, 0, 2].astype(float)
        mid, step_s = 0.5 * (bid + ask), float(np.median(np.diff(m.ts))) / 1e9
        moves = [np.mean(np.abs(np.log(mid[k:] / mid[:-k]))) * 1e4 for k in (round(s / step_s) for s in (1, 10, 60))]
        maker, taker = FEES["vip0"][VENUES[Path(path).name]]
        lines.append(f"| {Path(path).name} | {(m.ts[-1] - m.ts[0]) / 6e10:.1f} | "
                     f"{np.median((ask - bid) / mid) * 1e4:.3f} | {' / '.join(f'{x:.2f}' for x in moves)} | "
                     f"{2 * maker:g} / {2 * taker:g} |")
    return lines


def merged(results: list[dict], reference: list[dict] | None) -> dict:
    """One evaluation's result from the per-venue plans of one candidate (their folds are disjoint);
    reference: a quoting candidate's results on the same plans, whose baselines include the market-making
    ones, so that every candidate is judged against every baseline."""
    out = {"baselines": {}, "notes": {}, "agents": []}
    for i, r in enumerate(results):
        base = reference[i] if reference is not None else r
        out["baselines"].update(base["baselines"])
        out["notes"].update(base["notes"])
        out["agents"] += r["agents"]
    out["agents"].sort(key=lambda j: (j["fold"], j["seed"]))
    return out


def quote_baselines(plans: list, jobs: int) -> list[dict]:
    """Every baseline (the market-making ones too) on the folds of each market-order plan, at its fees:
    the baselines of the same plan with quote actions, in `jobs` processes."""
    import concurrent.futures as cf
    import dataclasses
    import multiprocessing as mp

    from trader.evaluate.run import run_baselines_for

    quoted = [dataclasses.replace(x, args={**x.args, "actions": "quote"}) for x in plans]
    out = [{"baselines": {}, "notes": {}} for _ in plans]
    with cf.ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_baselines_for, x, f): (i, f.index) for i, x in enumerate(quoted) for f in x.folds}
        for fut, (i, index) in futures.items():
            out[i]["baselines"][index], out[i]["notes"][index] = fut.result()
    return out


def _goal(row: dict) -> bool:
    """Issue 13's goal on one row: agent minus the best baseline with its lower 95 % bound above zero."""
    d = row["overall"]["agent_minus_best_baseline"]
    return d["low"] is not None and d["low"] > 0


def main() -> None:
    from trader.evaluate.choose import CHOOSE_AMONG

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--work", type=Path, default=Path("runs") / "oos")
    p.add_argument("--out", type=Path, default=None, help="folder for oos_goal.md / .json / .log [default: --work]")
    p.add_argument("--schedules", nargs="+", default=list(FEES), choices=list(FEES), help="fee schedules")
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--seeds", type=int, default=3, help="selection seeds per fold")
    p.add_argument("--held-out-seeds", type=int, default=5)
    p.add_argument("--held-out-folds", type=int, default=2, help="test blocks per held-out recording (2: 3 h each)")
    p.add_argument("--held-out-s", type=float, default=None, help="seconds held out at each recording's end "
                                                                   "[default: HELD_OUT's 6 h; smaller for a CPU slice]")
    p.add_argument("--timesteps", type=int, default=40_000, help="env steps per agent (x25 for the long candidates)")
    p.add_argument("--datasets", type=int, default=len(DATASETS), help="the first N selection datasets (a CPU slice)")
    p.add_argument("--held-out", nargs="*", default=None, choices=[h[0] for h in HELD_OUT],
                   help="held-out recordings to confirm on [default: all]; none given: selection only")
    p.add_argument("--confirm", choices=list(CANDIDATES), default=None,
                   help="skip the selection: check this candidate on the held-out data (outside the selection rule; "
                        "the report says so)")
    p.add_argument("--encoder", action="store_true",
                   help="with --confirm: the agents observe the embeddings of an encoder trained (trader train-encoder, "
                        "into WORK/encoder) only on the rows before the held-out tails (issue 13's encoder in the loop)")
    p.add_argument("--validation-s", type=float, default=None,
                   help="with --confirm: the agents train without the last SECONDS before each test block and, in "
                        "groups of --choose-among seeds, the one with the best PnL on those seconds is tested")
    p.add_argument("--choose-among", type=int, default=CHOOSE_AMONG, help="--validation-s: seeds per group")
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args()
    if a.validation_s is not None and not a.confirm:
        p.error("--validation-s: give it with --confirm")
    if a.encoder and not a.confirm:
        p.error("--encoder: give it with --confirm (the selection runs without an encoder)")
    out_dir = a.out or a.work
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(out_dir / "oos_goal.log", "a")
    t_all = time.perf_counter()

    def log(line: str) -> None:
        line = f"[{time.perf_counter() - t_all:6.0f} s] {line}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    from trader.backtest.suite import BaselineOptions
    from trader.data.cli import data
    from trader.evaluate.choose import chosen_on_validation, validation_folds
    from trader.evaluate.folds import dataset_folds, tail_folds
    from trader.evaluate.run import Plan, run_plans
    from trader.evaluate.summary import summarize
    from trader.sim import load_market

    selection = convert_all(a.shared, a.work)[:a.datasets]
    moves = moves_table(selection)
    rows = [len(load_market(x, feature_set=2).book) for x in selection]
    folds = dataset_folds(selection, rows, BASE["horizon"], 2)
    by_venue: dict[str, list] = {}
    for f in folds:
        by_venue.setdefault(VENUES[Path(f.test_data).name], []).append(f)
    venues = sorted(by_venue)
    quoting = [c for c in a.candidates if CANDIDATES[c]["actions"] == "quote"]
    if not quoting:
        raise SystemExit("--candidates: give at least one quoting candidate (its baselines include the "
                         "market-making ones every candidate is judged against)")
    baseline_options = BaselineOptions(0.6, 0, 0.01)
    plans, keys = [], []
    for schedule in [] if a.confirm else a.schedules:
        for name in a.candidates:
            for venue in venues:
                plans.append(Plan("ppo", options_of(name, schedule, venue, a.timesteps), by_venue[venue],
                                  list(range(a.seeds)), a.work / "selection" / schedule / name / venue,
                                  baseline_options))
                keys.append((schedule, name, venue))
    log(f"selection: {len(folds)} folds ({', '.join(f'{v}: {len(by_venue[v])}' for v in venues)}), "
        f"{len(a.candidates)} candidates x {len(a.schedules)} fee schedules x {a.seeds} seeds = "
        f"{sum(len(x.folds) * len(x.seeds) for x in plans)} agents, --jobs {a.jobs}")
    results = run_plans(plans, a.jobs, lambda done, n, what: log(f"selection {done}/{n} {what}"))
    res = dict(zip(keys, results))
    report = {"fees": FEES, "candidates": CANDIDATES, "base": BASE, "timesteps": a.timesteps, "seeds": a.seeds,
              "selection_data": [Path(x).name for x in selection], "selection": {}, "chosen": {}, "held_out": {},
              "validation": {}}  # --validation-s: per fold, every seed's numbers
    sel_rows, chosen = [], {s: {"name": a.confirm, "trades": True} for s in a.schedules} if a.confirm else {}
    report["chosen"] = chosen
    for schedule in [] if a.confirm else a.schedules:
        ref = [res[(schedule, quoting[0], v)] for v in venues]
        rows_s = []
        for name in a.candidates:
            own = [res[(schedule, name, v)] for v in venues]
            result = merged(own, None if name in quoting else ref)
            ov = summarize(result)["overall"]
            row = {"schedule": schedule, "name": name, "overall": ov, "trading": trading_share(result)}
            rows_s.append(row)
            report["selection"][f"{schedule}/{name}"] = row
        eligible = [r for r in rows_s if r["trading"] >= 0.5] or rows_s
        best = max(eligible, key=lambda r: (r["overall"]["agent_minus_best_baseline"]["low"],
                                            r["overall"]["agent_minus_best_baseline"]["mean"]))
        chosen[schedule] = {"name": best["name"], "trades": eligible is not rows_s or best["trading"] >= 0.5}
        sel_rows += rows_s
    t_sel = time.perf_counter() - t_all
    log(f"selection done; chosen: {chosen}")
    held_paths: dict[str, tuple[str, float]] = {}
    held_rows: list[dict] = []

    def fees_text(schedule: str) -> str:
        return ", ".join(f"{v} {m:g}/{t:g}" for v, (m, t) in FEES[schedule].items())

    rows_due = len(HELD_OUT if a.held_out is None else a.held_out) * len(a.schedules) * (1 if a.validation_s is None
                                                                                          else 2)

    def write() -> None:
        """oos_goal.md and .json: the selection, and the held-out rows done so far."""
        lines = [
            "# Issue 13's goal at the venues' fees (`benchmarks/oos_goal.py`)", "",
            f"PPO, feature set 2, sizes {TRADE_NOTIONAL:g} / {MAX_NOTIONAL:g} of quote currency, {a.timesteps:,} env "
            f"steps per agent (x{LONG['timesteps_factor']} on {LONG['num_envs']} envs for *_long). Fees "
            "maker/taker bps: " + "; ".join(f"**{s}**: {fees_text(s)}" for s in a.schedules) + ". Net PnL summed "
            "over folds, bps of max notional, mean over seeds [95 % bootstrap CI]; baselines: every one (market "
            "orders and market making).", "",
            f"Selection: {len(folds)} walk-forward folds over {', '.join(report['selection_data'])} (each trains on "
            f"the 2 datasets before its test dataset), {a.seeds} seeds. What there is to earn (bps):", "", *moves, "",
            "| fees | candidate | agent | agent - best baseline | best baseline | every baseline | seeds > flat | "
            "tests with fills |", "|---|---|---:|---:|---|---|---:|---:|",
            *[f"| {r['schedule']} | {r['name']} | {_ci(r['overall']['agent'])} | "
              f"{_ci(r['overall']['agent_minus_best_baseline'])} | {r['overall']['best_baseline']} | "
              + ", ".join(f"{k} {v:+.1f}" for k, v in sorted(r["overall"]["baselines"].items()))
              + f" | {r['overall']['seeds_beating_flat']:.0%} | {r['trading']:.0%} |" for r in sel_rows], "",
            (f"Selection not run: {a.confirm} given with --confirm, a check outside the selection rule." if a.confirm
             else "Chosen: " + "; ".join(f"{s}: {c['name']}" + ("" if c["trades"] else " (none trades in half its "
                                                                                        "tests: the best anyway)")
                                         for s, c in chosen.items()) + f". Selection {t_sel:.0f} s."), "",
            *([] if a.confirm else [
                "Issue 13's goal (agent - best baseline with its lower 95 % bound above zero) met on the selection "
                "folds by: " + (", ".join(f"{r['schedule']}/{r['name']}" for r in sel_rows if _goal(r)) or "none")
                + ".", ""]),
            "Held out (named before any run): " + ", ".join(f"{n}, its last {s / 3600:.3g} h" for n, (_, s) in
                                                              held_paths.items())
            + f"; {a.held_out_folds} test blocks each, every fold training on all rows before its block"
            + ("" if a.validation_s is None else f" but the last {a.validation_s / 3600:.3g} h (its validation)")
            + f"; {a.held_out_seeds} seeds.", "",
            "| fees | chosen | data | agent | agent - best baseline | best baseline | every baseline | seeds > flat | "
            "seeds > every baseline | tests with fills | goal met |",
            "|---|---|---|---:|---:|---|---|---:|---:|---:|---|",
            *[f"| {r['schedule']} | {r['name']} | {r['data']} | {_ci(r['overall']['agent'])} | "
              f"{_ci(r['overall']['agent_minus_best_baseline'])} | {r['overall']['best_baseline']} | "
              + ", ".join(f"{k} {v:+.1f}" for k, v in sorted(r["overall"]["baselines"].items()))
              + f" | {r['overall']['seeds_beating_flat']:.0%} | {r['overall']['seeds_beating_every_baseline']:.0%} | "
              f"{r['trading']:.0%} | {'yes' if _goal(r) else 'no'} |"
              for r in sorted(held_rows, key=lambda r: (r["schedule"], r["data"]))], "",
            *(["Correlation over seeds of validation and test PnL, per fold: " + "; ".join(
                f"{k} " + ", ".join(f"{f['correlation']:+.2f}" if f["correlation"] is not None else "n/a" for f in v)
                for k, v in report["validation"].items())
               + ".", ""] if a.validation_s is not None else []),
            f"{'All' if len(held_rows) == rows_due else 'Unfinished (held out pending):'} "
            f"{time.perf_counter() - t_all:.0f} s with --jobs {a.jobs} (cpu).",
        ]
        (out_dir / "oos_goal.md").write_text("\n".join(lines) + "\n")
        (out_dir / "oos_goal.json").write_text(json.dumps(report, indent=1, default=str))
    write()

    held_names = [h[0] for h in HELD_OUT] if a.held_out is None else a.held_out
    plans2, keys2, heads = [], [], []
    grid_rows: dict[str, int] = {}  # held-out dataset -> its rows on the agents' grid
    for name, fmt, files, venue, tail_s in HELD_OUT:
        if name not in held_names:
            continue
        path = a.work / "data" / name
        if not (path / "meta.json").exists():
            data.main(["convert", *[str(a.shared / f) for f in files], "-o", str(path), "--format", fmt],
                      standalone_mode=False)
        ts = load_market(str(path), feature_set=2).ts
        grid_rows[str(path)] = len(ts)
        hold_s = tail_s if a.held_out_s is None else a.held_out_s
        held_paths[name] = (str(path), hold_s)
        hf = tail_folds(str(path), ts, hold_s, a.held_out_folds, BASE["horizon"])
        if a.encoder:
            heads.append(head_of(a.shared, a.work, name, files, fmt, ts, hf[0].test_start))
        val_folds: list = []
        if a.validation_s is not None:
            val_folds, hf = validation_folds(hf, lambda _: ts, a.validation_s, BASE["horizon"])
        for schedule in a.schedules:
            cand = chosen[schedule]["name"]
            plans2.append(Plan("ppo", options_of(cand, schedule, venue, a.timesteps), hf, list(range(a.held_out_seeds)),
                               a.work / "held_out" / schedule / (cand + ("+encoder" if a.encoder else "")) / name,
                               baseline_options, tuple(val_folds)))
            keys2.append((schedule, name))
    if a.encoder:
        encoder = train_encoder(a.work, heads, grid_rows, log)
        for x in plans2:
            x.args["encoder"] = encoder
    if plans2:
        market_orders = [(k, x) for k, x in zip(keys2, plans2) if x.args["actions"] != "quote"]
        ref2 = dict(zip([k for k, _ in market_orders], quote_baselines([x for _, x in market_orders], a.jobs)))
        log(f"held out: {len(plans2)} plans, {sum(len(x.folds) * len(x.seeds) for x in plans2)} agents")

        def add_row(schedule: str, name: str, label: str, result: dict) -> None:
            row = {"schedule": schedule, "name": chosen[schedule]["name"] + ("+encoder" if a.encoder else "") + label,
                   "data": name, "overall": summarize(result)["overall"], "trading": trading_share(result),
                   "held_out_s": held_paths[name][1]}
            held_rows.append(row)
            report["held_out"][f"{schedule}/{name}{label}"] = row

        def held_done(i: int, result: dict) -> None:
            schedule, name = keys2[i]
            result = merged([result], [ref2[keys2[i]]] if keys2[i] in ref2 else None)
            if a.validation_s is None:
                add_row(schedule, name, "", result)
            else:
                best, per_fold = chosen_on_validation(result, a.choose_among)
                v = f"{a.validation_s / 3600:.3g} h"
                add_row(schedule, name, f", every seed (trained without the {v} of validation)", result)
                add_row(schedule, name, f", the best of {a.choose_among} on the {v} of validation", best)
                report["validation"][f"{schedule}/{name}"] = per_fold
            write()

        run_plans(plans2, a.jobs, lambda done, n, what: log(f"held out {done}/{n} {what}"), held_done)
    write()
    log("done")
    print((out_dir / "oos_goal.md").read_text())


if __name__ == "__main__":
    main()
