"""Leave-one-dataset-out benchmark of the encoders on the shared recordings (issue 14).

    PYTHONPATH=python python3 benchmarks/encoder_lodo.py --shared ../shared/data --out runs/lodo --device cuda --jobs 6

Converts (with `trader-sim convert`, once, into OUT/data/) every Binance BTC/ETH sequence of
binance_hftbacktest_raw_feed, NEXOUSDT and Bitstamp BTC/USD; samples each on the same time grid
(--interval-ms, --depth levels; Bitstamp on its receive clock: it has no exchange time) and caches
the first --max-rows rows of each in OUT/series/ (compressed .npz). `--series-from DIR` reads such a
cache instead (a machine without the recordings or the C++ core: copy OUT/series there). Then, for
every dataset d and every seed: train each model on all the other datasets (each split in time order
train | gap | val; the epoch kept is chosen on those validation rows only), and score it on every
labelled row of d, a dataset it never saw. Baselines fitted on the same training rows: the majority
class and the logistic regression on OFI (trader.nn.baselines). Label thresholds are per dataset (a
third of its rows stationary), inputs are normalized causally (trader.nn.inputs.RollingNorm), so no
statistic of d's rows reaches the models except its own label thresholds, the same for every model.

Writes OUT/lodo.json (every fold, seed, model and horizon, with the chosen epochs) and OUT/lodo.md,
and prints the table: macro-F1 (%) on the held-out dataset, averaged over the held-out datasets,
mean +- std over seeds; then the per-dataset means. A task is one (held-out dataset, seed, model), or
the baselines of a held-out dataset; tasks run in --jobs processes, the slowest models first, and
finished tasks are kept in OUT/tasks/ and skipped when the command is run again with the same options
(so a run cut by `timeout` continues where it stopped; a change of --models keeps the other models').

Defaults are ours as measured in benchmarks/README.md (encoder section): the TCN with the logistic
regression skip (--skip), inputs of+ofi+trend, every training dataset weighing the same (--balance),
a small TCN (32 channels) trained at most 3 epochs of 100 steps; TLOB and DeepLOB at most 3 epochs of
100 steps of 256 windows (random windows of the training rows: about a sixth of them per epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np

from trader.nn.inputs import INPUTS

HORIZONS = (10, 20, 50, 100)
BINANCE_BTC_ETH = ("btc", "eth")  # every BTC and ETH sequence of the hftbacktest feed (spot, USD-M, COIN-M)


def convert(shared: Path, out: Path) -> list[Path]:
    """Dataset folders of the shared recordings, converted once with `trader-sim convert`."""
    sources = [("binance", sorted((shared / "binance_hftbacktest_raw_feed").glob("*/*.gz"))),
               ("nexousdt", sorted((shared / "binance_spot_nexousdt_raw_feed").glob("*.gz"))),
               ("bitstamp", sorted((shared / "bitstamp_btcusd_2015-05-01_l3_events_top20").glob("*.bz2")))]
    dirs = []
    for name, files in sources:
        if not files:
            raise SystemExit(f"--shared {shared}: no raw files for {name}; expected the layout of ../shared/data")
        target = out / "data" / name
        if not target.is_dir():
            cmd = [sys.executable, "-m", "trader.sim.cli", "convert", *map(str, files), "-o", str(target)]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        found = sorted(p.parent for p in target.rglob("meta.json"))
        dirs += [d for d in found if name != "binance" or any(s in d.name for s in BINANCE_BTC_ETH)]
    return dirs


def cache_dir(a) -> Path:
    return Path(a.series_from) if a.series_from else Path(a.out) / "series"


def cache_file(a, name: str, inputs: str) -> Path:
    return cache_dir(a) / f"{name}__{a.interval_ms:g}ms_{a.depth}l_{inputs}_{a.max_rows}r.npz"


def load_all(dirs: list[Path], a, inputs: str) -> list:
    """Series of every dataset (its first --max-rows rows), cached as compressed .npz in cache_dir(a):
    workers, and runs with --series-from (no replay, no C++ core needed), load the cache. Inputs other
    than 'book' without a cache of their own are derived from the 'book' cache (its book_features and
    levels) with order flow in lots: the cache has no lot size, and the rolling z-score that every model
    reads removes that scale."""
    from trader.nn.data import Series, load_series
    from trader.nn.inputs import encoder_inputs

    out = []
    for d in dirs:
        f = cache_file(a, d.name, inputs)
        if not f.is_file() and inputs != "book" and cache_file(a, d.name, "book").is_file():
            z = np.load(cache_file(a, d.name, "book"))
            feats = encoder_inputs(z["features"], z["book"], 1.0, inputs)
            out.append(Series(d.name, feats, z["mid"], z["book"], z["ts"], a.depth, inputs, a.interval_ms))
            continue
        if not f.is_file():
            if a.series_from:
                raise SystemExit(f"--series-from {a.series_from}: missing {f.name}; write it with a run on the "
                                 "same --interval-ms, --depth, --inputs and --max-rows")
            f.parent.mkdir(parents=True, exist_ok=True)
            s = load_series(d, depth=a.depth, interval_ms=a.interval_ms, inputs=inputs)
            n = a.max_rows or len(s.mid)
            np.savez_compressed(f, features=s.features[:n], mid=s.mid[:n], book=s.book[:n], ts=s.ts[:n])
        z = np.load(f)
        out.append(Series(d.name, z["features"], z["mid"], z["book"], z["ts"], a.depth, inputs, a.interval_ms))
    return out


def cached_datasets(a) -> list[Path]:
    """Dataset names of the series caches in --series-from (the 'book' caches written with these settings)."""
    tail = f"__{a.interval_ms:g}ms_{a.depth}l_book_{a.max_rows}r.npz"
    names = sorted(f.name[:-len(tail)] for f in Path(a.series_from).glob("*" + tail))
    if not names:
        raise SystemExit(f"--series-from {a.series_from}: no series cache *{tail}")
    return [Path(n) for n in names]


MODEL_COST = {"deeplob": 0, "tlob": 1, "tcn": 2, "baselines": 3}  # slowest first: the pool's tail is short


def _task(job: dict) -> dict:
    """One held-out dataset, one seed and one model ("baselines": the majority class and the OFI logistic
    regression) trained on the other datasets, scored on it."""
    import torch

    from trader.nn.baselines import fit_logistic_regression, majority_predict, ofi_features, scores
    from trader.nn.data import build
    from trader.nn.train import TrainConfig, evaluate, train_model

    a = argparse.Namespace(**job["args"])
    kind = job["model"]
    torch.set_num_threads(job["threads"])
    t0 = time.perf_counter()
    opts = dict(horizons=HORIZONS, window=a.window, norm="rolling", norm_halflife=a.norm_halflife,
                alpha_scope="series")
    series = load_all([Path(d) for d in job["dirs"]], a, a.inputs if kind in ("tcn", "tlob") else "book")
    # training data: train | gap | val of the other datasets, no test rows; DeepLOB reads the book levels
    train_data = build([s for s in series if s.name != job["held_out"]], fractions=(0.8, 0.2, 0.0), **opts)
    test_data = build([], test_series=[s for s in series if s.name == job["held_out"]], **opts)
    result = {"held_out": job["held_out"], "seed": job["seed"], "model": kind, "models": {},
              "test_rows": int(sum(len(t) for _, t in test_data.rows("test"))),
              "train_rows": int(sum(len(t) for _, t in train_data.rows("train")))}
    # OFI logistic regression per horizon, fitted on the training rows; its probabilities on the validation
    # rows (to choose blend weights) and on the held-out rows
    r_tr, r_va, r_te = train_data.rows("train"), train_data.rows("val"), test_data.rows("test")
    y_va = np.concatenate([train_data.labels[i][t] for i, t in r_va])
    y_te = np.concatenate([test_data.labels[i][t] for i, t in r_te])
    linear = []  # (validation, held-out) probabilities per horizon
    if kind == "baselines" or a.blend:
        ofi_tr = [ofi_features(s.book) for s in train_data.series]
        x_tr, x_va = (np.concatenate([ofi_tr[i][t] for i, t in rows]) for rows in (r_tr, r_va))
        x_te = np.concatenate([ofi_features(test_data.series[i].book)[t] for i, t in r_te])
        for h in range(len(HORIZONS)):
            y_tr = np.concatenate([train_data.labels[i][t, h] for i, t in r_tr])
            proba = fit_logistic_regression(x_tr, y_tr)
            linear.append((proba(x_va), proba(x_te)))
            if kind == "baselines":
                for name, pred in (("majority", majority_predict(y_tr, len(y_te))),
                                   ("logreg_ofi", proba(x_te).argmax(1))):
                    result["models"].setdefault(name, {"scores": []})["scores"].append(scores(y_te[:, h], pred))
    if kind != "baselines":
        windowed = kind != "tcn"
        cfg = TrainConfig(model=kind, epochs=a.epochs, seed=job["seed"], device=a.device,
                          batch_size=a.batch_size, learning_rate=a.learning_rate, weight_decay=a.weight_decay,
                          dropout=a.dropout, channels=a.channels, tcn_blocks=a.tcn_blocks,
                          embedding_dim=a.embedding_dim, skip=a.skip, balance=a.balance,
                          max_steps_per_epoch=a.max_steps_windowed if windowed else a.max_steps_tcn,
                          keep_checkpoints=1, select="val_f1", patience=a.patience, lr_schedule="cosine",
                          torch_threads=job["threads"])
        run_dir = Path(a.out) / "runs" / job["held_out"] / f"seed{job['seed']}"
        model, meta = train_model(train_data, cfg, run_dir, progress=False)
        if meta["interrupted"]:  # SIGTERM, SIGINT: stop; this task is not recorded, a rerun does it again
            raise SystemExit(f"{kind}, held out {job['held_out']}, seed {job['seed']}: {meta['interrupted']}")
        result["models"][kind] = {
            "scores": evaluate(model, test_data, cfg), "train_seconds": meta["train_seconds"],
            "history": meta["history"], "chosen_epoch": meta.get("best_epoch"),
            "params": meta["params"], "config": asdict(cfg)}
        if a.blend:
            result["models"][f"{kind}+logreg"] = blend(model, cfg, train_data, test_data, linear, y_va, y_te)
    result["seconds"] = time.perf_counter() - t0
    return result


def blend(model, cfg, train_data, test_data, linear, y_va, y_te) -> dict:
    """Scores on the held-out rows of w p_model + (1 - w) p_logreg, w per horizon chosen on the validation
    rows of the training datasets (trader.nn.baselines.blend_weight), never on the held-out rows."""
    import torch

    from trader.nn.baselines import blend_weight, scores
    from trader.nn.train import _Stack, predict

    device = next(model.parameters()).device
    probs = []
    for data, split in ((train_data, "val"), (test_data, "test")):
        stack = _Stack(data, device)
        probs.append(torch.softmax(predict(model, stack, data, stack.rows(data, split), cfg, device), -1).cpu().numpy())
    weights, out = [], []
    for h, (lin_va, lin_te) in enumerate(linear):
        w = blend_weight(probs[0][:, h].astype(np.float64), lin_va, y_va[:, h])
        weights.append(w)
        out.append(scores(y_te[:, h], (w * probs[1][:, h] + (1 - w) * lin_te).argmax(1)))
    return {"scores": out, "weights": weights}


def table(results: list[dict], models: list[str]) -> tuple[str, dict]:
    """Markdown: mean over held-out datasets, then mean +- std over seeds; and per held-out dataset."""
    seeds = sorted({r["seed"] for r in results})
    held = sorted({r["held_out"] for r in results})
    summary = {}
    lines = ["| model | " + " | ".join(f"k={k}" for k in HORIZONS) + " |", "|---|" + "---:|" * len(HORIZONS)]
    for m in models:
        per_seed = []
        for sd in seeds:
            rs = [r for r in results if r["seed"] == sd and m in r["models"]]
            if len(rs) == len(held):
                per_seed.append([np.mean([r["models"][m]["scores"][h]["macro_f1"] for r in rs]) * 100
                                 for h in range(len(HORIZONS))])
        if not per_seed:
            continue
        mean, std = np.mean(per_seed, 0), np.std(per_seed, 0)
        summary[m] = {"mean": mean.tolist(), "std": std.tolist(), "seeds": len(per_seed)}
        lines.append(f"| {m} | " + " | ".join(f"{x:.1f} ± {s:.1f}" for x, s in zip(mean, std)) + " |")
    lines += ["", "Per held-out dataset (macro-F1 %, mean over seeds; k = " + ", ".join(map(str, HORIZONS)) + "):", "",
              "| held out | test rows | " + " | ".join(models) + " |", "|---|---:|" + "---|" * len(models)]
    for d in held:
        rs = [r for r in results if r["held_out"] == d]
        cells = []
        for m in models:
            f1 = [[r["models"][m]["scores"][h]["macro_f1"] * 100 for h in range(len(HORIZONS))] for r in rs if m in r["models"]]
            cells.append(" / ".join(f"{x:.1f}" for x in np.mean(f1, 0)) if f1 else "-")
        lines.append(f"| {d} | {rs[0]['test_rows']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default="../shared/data", help="the shared recordings (../shared/data)")
    ap.add_argument("--out", required=True, help="output folder (datasets, runs, lodo.json, lodo.md)")
    ap.add_argument("--datasets", default="", help="comma-separated substrings: keep only matching datasets")
    ap.add_argument("--held-out", default="", help="comma-separated substrings: hold out only matching datasets "
                    "(default: each in turn)")
    ap.add_argument("--models", default="tcn,tlob,deeplob", help="comma-separated: tcn, tlob, deeplob")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--jobs", type=int, default=1, help="tasks run in parallel processes")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-steps-tcn", type=int, default=100, help="optimizer steps per epoch, tcn (0: a full pass)")
    ap.add_argument("--max-steps-windowed", type=int, default=100, help="optimizer steps per epoch, tlob and deeplob")
    ap.add_argument("--batch-size", type=int, default=256, help="windows per step (tlob, deeplob)")
    ap.add_argument("--learning-rate", type=float, default=3e-4)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--channels", type=int, default=32, help="tcn")
    ap.add_argument("--tcn-blocks", type=int, default=6, help="tcn: dilations 1 .. 2^(blocks-1)")
    ap.add_argument("--skip", action=argparse.BooleanOptionalAction, default=True,
                    help="tcn: a logistic regression on the input row, fitted first and frozen, + the deep head "
                         "started at 0 (trader.nn.models)")
    ap.add_argument("--balance", action=argparse.BooleanOptionalAction, default=True,
                    help="every training dataset weighs the same in the rows trained on and in the validation "
                         "score (trader.nn.train.TrainConfig.balance)")
    ap.add_argument("--blend", action=argparse.BooleanOptionalAction, default=False,
                    help="also score each model blended with the OFI logistic regression, the weight per horizon "
                         "chosen on the training datasets' validation rows")
    ap.add_argument("--embedding-dim", type=int, default=32, help="tcn, tlob")
    ap.add_argument("--patience", type=int, default=2, help="epochs without a better validation macro-F1")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--interval-ms", type=float, default=100.0)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--inputs", default="of+ofi+trend", choices=INPUTS,
                    help="inputs of tcn and tlob (trader.nn.inputs); deeplob reads the book ('book')")
    ap.add_argument("--norm-halflife", type=float, default=5000.0, help="rows (RollingNorm)")
    ap.add_argument("--max-rows", type=int, default=60_000,
                    help="rows kept per dataset, from its start (NEXOUSDT and Bitstamp have ~1 M at 100 ms; 0: all)")
    ap.add_argument("--series-from", default="",
                    help="a folder of series caches (OUT/series of an earlier run) to use instead of --shared: "
                         "no conversion, no C++ core needed (for a device without the recordings)")
    ap.add_argument("--report-only", action="store_true",
                    help="run no task: the table of the tasks finished in OUT/tasks with these options")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dirs = cached_datasets(a) if a.series_from else convert(Path(a.shared), out)
    if a.datasets:
        dirs = [d for d in dirs if any(s in d.name for s in a.datasets.split(","))]
    if len(dirs) < 2:
        raise SystemExit(f"--datasets {a.datasets!r}: leave-one-out needs at least 2 datasets, found {len(dirs)}")
    load_all(dirs, a, "book")  # fills the caches before the workers start
    series = load_all(dirs, a, a.inputs)
    print(f"{len(series)} datasets: " + ", ".join(f"{s.name} ({len(s.mid):,} rows)" for s in series), flush=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    args = {k: v for k, v in vars(a).items()}
    # per-model tasks: a change of --models keeps the finished tasks of the other models
    unkeyed = ("jobs", "out", "shared", "series_from", "models", "report_only")
    key = json.dumps({k: v for k, v in args.items() if k not in unkeyed}, sort_keys=True)
    tasks_dir = out / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // max(1, a.jobs))
    kinds = a.models.split(",")
    jobs = [{"args": args, "dirs": [str(d) for d in dirs], "held_out": d.name, "seed": sd, "model": m,
             "threads": threads} for d in dirs for sd in seeds for m in kinds + ["baselines"] * (sd == seeds[0])
            if not a.held_out or any(s in d.name for s in a.held_out.split(","))]
    jobs.sort(key=lambda j: MODEL_COST[j["model"]])

    def task_file(j):
        return tasks_dir / f"{j['held_out']}__seed{j['seed']}__{j['model']}.json"

    results, todo = [], []
    for j in jobs:
        f = task_file(j)
        done = json.loads(f.read_text()) if f.is_file() else None
        if done is not None and done.get("key") == key:
            results.append(done["result"])
        else:
            todo.append(j)
    if a.report_only:  # the table of the finished tasks (e.g. copied back from a device run cut by its timeout)
        print(f"--report-only: {len(results)} of {len(jobs)} tasks finished, {len(todo)} not run", flush=True)
        todo = []
    print(f"{len(todo)} of {len(jobs)} tasks to run ({a.jobs} at a time, {threads} threads each)", flush=True)
    t0 = time.perf_counter()

    def keep(j, r):
        task_file(j).write_text(json.dumps({"key": key, "result": r}))
        results.append(r)
        f1 = "; ".join(f"{m} " + "/".join(f"{s['macro_f1'] * 100:.1f}" for s in v["scores"])
                       for m, v in r["models"].items())
        print(f"[{time.perf_counter() - t0:7.1f} s] held out {r['held_out']}, seed {r['seed']}, {r['model']} "
              f"({r['seconds']:.0f} s): {f1}", flush=True)

    if a.jobs == 1:
        for j in todo:
            keep(j, _task(j))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_task, j): j for j in todo}
            for f in as_completed(futures):
                keep(futures[f], f.result())
    # one row per (held-out dataset, seed) with every model; the baselines are deterministic: fitted
    # once per fold (first seed), shown for every seed
    merged = {}
    for r in results:
        m = merged.setdefault((r["held_out"], r["seed"]), {"held_out": r["held_out"], "seed": r["seed"],
                                                          "test_rows": r["test_rows"], "models": {}})
        m["models"].update(r["models"])
    base = {r["held_out"]: r["models"] for r in results if r["model"] == "baselines"}
    results = list(merged.values())
    for r in results:
        for m in ("majority", "logreg_ofi"):
            if m not in r["models"] and m in base.get(r["held_out"], {}):
                r["models"][m] = base[r["held_out"]][m]
    models = ["logreg_ofi", "majority"] + [m + sfx for m in a.models.split(",") for sfx in
                                           ("", "+logreg")[:1 + a.blend]]
    md, summary = table(results, models)
    head = (f"Leave-one-dataset-out, {len(dirs)} datasets, seeds {a.seeds}, {a.interval_ms:g} ms rows, "
            f"{a.depth} levels, window {a.window}, inputs {a.inputs}; macro-F1 (%) on the held-out dataset, "
            f"mean over held-out datasets, mean ± std over seeds (baselines: deterministic, std 0).")
    text = head + "\n\n" + md + "\n"
    (out / "lodo.md").write_text(text)
    (out / "lodo.json").write_text(json.dumps({"args": args, "summary": summary, "results": results}, indent=1))
    print(text)
    print(f"wrote {out / 'lodo.md'} and {out / 'lodo.json'}")


if __name__ == "__main__":
    main()
