"""The `trader train-encoder` report: scores per evaluation set, model and horizon (mean and std over
seeds), the epoch each seed kept, training cost and CPU inference cost per row.

Evaluation sets: "test split" (the time-ordered test rows of the training datasets) and "held out
NAME" (every labelled row of a dataset never trained on: --test-data, or the left-out dataset of
--lodo). results[set][model] is one list per seed of per-horizon score dicts (trader.nn.baselines.scores).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch


def inference_cost_us(model, in_features: int, window: int, repeats: int = 200) -> float:
    """Median CPU time (µs) of one embedding at batch 1: one new row through trader.nn.stream for the
    causal TCN (what live trading pays), the last `window` rows for a windowed model."""
    from trader.nn.stream import TCNStream

    model = model.to("cpu").eval()
    times = []
    if hasattr(model, "embed_sequence"):
        stream = TCNStream(model)
        rows = np.random.default_rng(0).standard_normal((repeats + 20, in_features)).astype(np.float32)
        for i, row in enumerate(rows):
            t0 = time.perf_counter()
            stream.push(row)
            if i >= 20:
                times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e6)
    x = torch.zeros(1, window, in_features)
    with torch.inference_mode():
        for _ in range(20):
            model.embed(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.embed(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def summarize(per_seed: list[list[dict]]) -> list[dict]:
    """Per horizon: mean and std over seeds of accuracy and macro-F1."""
    out = []
    for h in range(len(per_seed[0])):
        f1 = [s[h]["macro_f1"] for s in per_seed]
        acc = [s[h]["accuracy"] for s in per_seed]
        out.append({"macro_f1": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)), "accuracy": float(np.mean(acc)),
                    "accuracy_std": float(np.std(acc)), "seeds": len(per_seed), "n": per_seed[0][h]["n"]})
    return out


def write_report(run_dir: Path, info: dict, results: dict, costs: dict) -> dict:
    """report.json and report.md in run_dir. info: instruments, horizons, window, levels, inputs, norm,
    alphas per dataset, class balance."""
    horizons = info["horizons"]
    summary = {name: {m: summarize(r) for m, r in by_model.items()} for name, by_model in results.items()}
    held = [n for n in summary if n.startswith("held out")]
    if len(held) > 1:  # --lodo or several --test-data: the mean over the held-out datasets, per seed
        mean = {}
        for m in {m for n in held for m in results[n]}:
            if all(m in results[n] for n in held):
                seeds = min(len(results[n][m]) for n in held)
                mean[m] = summarize([[{"macro_f1": np.mean([results[n][m][s][h]["macro_f1"] for n in held]),
                                       "accuracy": np.mean([results[n][m][s][h]["accuracy"] for n in held]),
                                       "n": sum(results[n][m][s][h]["n"] for n in held)}
                                      for h in range(len(horizons))] for s in range(seeds)])
        summary["mean over held-out datasets"] = mean
    report = {**info, "scores": summary, "scores_per_seed": results, "training_cost": costs}
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    lines = ["# Encoder report", "", f"Training datasets: {', '.join(info['instruments'])}",
             f"Rows: {info['levels']} levels, window {info['window']}, inputs {info['inputs']}, normalization "
             f"{info['norm']}; splits in time order with gaps of {max(horizons)} rows; label thresholds per "
             f"{info['alpha_scope']} (train rows only).", "",
             "Macro-F1 and accuracy (%), mean ± std over seeds.", ""]
    for name, by_model in summary.items():
        lines += [f"## {name}", "", "| model | " + " | ".join(f"k={k} F1 | k={k} acc" for k in horizons) + " |",
                  "|---|" + "---:|" * (2 * len(horizons))]
        for m, per_h in by_model.items():
            lines.append(f"| {m} | " + " | ".join(f"{s['macro_f1'] * 100:.1f} ± {s['macro_f1_std'] * 100:.1f} | "
                                                  f"{s['accuracy'] * 100:.1f}" for s in per_h) + " |")
        lines.append("")
    lines += ["Test class balance (down / stationary / up):", ""]
    for k, b in info["class_balance"]["test"].items():
        lines.append(f"- {k}: {b['down']:.2f} / {b['stationary']:.2f} / {b['up']:.2f} ({b['rows']} rows)")
    lines += ["", "| model | params | epoch kept per run (of epochs run) | train seconds | samples/s | CPU inference µs/row (batch 1) |",
              "|---|---|---|---|---|---|"]
    for name, c in costs.items():
        kept = ", ".join(f"{e} ({n})" for e, n in zip(c["chosen_epochs"], c["epochs_run"]))
        lines.append(f"| {name} | {c['params']} | {kept} | {c['train_seconds']:.1f} | {c['samples_per_s']:.0f} | "
                     f"{c['inference_us']:.0f} |")
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
    return report
