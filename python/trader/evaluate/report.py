"""The evaluation report: evaluation.json (every number), evaluation.md (the tables people read) and
the plots (per fold: equity, inventory and drawdown panels, action distribution; overall: PnL per fold
with its interval, pooled action distribution).

Per fold the agent's metrics are the mean over seeds with a bootstrap 95 % interval (trader.evaluate.stats);
overall, the mean over folds and seeds with a two-stage interval (folds, then seeds). Baselines are
deterministic: one value per fold, and over folds a mean with an interval over folds. "Best baseline"
is the best on each fold's own test rows, chosen after the fact: the hardest comparison for the agent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trader.backtest.engine import BacktestResult
from trader.backtest.report import currencies, distribution, plot_actions, plot_panels, sharpe_note, units
from trader.evaluate.folds import Fold
from trader.evaluate.stats import bootstrap_mean

# (metric key, header, format): the columns of every table
COLUMNS = [
    ("pnl_bps_of_max_notional", "net PnL (bps of max notional)", "{:+.2f}"),
    ("pnl_quote", "net PnL (quote)", "{:+.4f}"),
    ("pnl_bps_of_notional", "net PnL (bps of traded notional)", "{:+.2f}"),
    ("sharpe_per_step", "Sharpe per step", "{:+.4f}"),
    ("max_drawdown_quote", "max drawdown (quote)", "{:.4f}"),
    ("turnover", "turnover (x max notional)", "{:.2f}"),
    ("fees_paid", "fees (quote)", "{:+.4f}"),
    ("fill_ratio", "fill ratio", "{:.3f}"),
    ("trades", "steps with fills", "{:.1f}"),
    ("mean_abs_inventory_base", "mean abs inventory (base)", "{:.4g}"),
]
PNL_KEYS = ("pnl_bps_of_max_notional", "pnl_quote")


def _interval(values, seed: int = 0) -> dict | None:
    """Mean and interval of the values (1-D or [folds, seeds]); None when one is missing (n/a)."""
    arr = np.array(values, dtype=object)
    if any(v is None for v in arr.ravel()):
        return None
    return bootstrap_mean(arr.astype(np.float64), seed=seed).as_dict()


def fold_summary(agents: list[BacktestResult], baselines: list[BacktestResult]) -> dict:
    """One fold: the agent over seeds (mean, 95 % interval), each baseline, agent minus the best baseline
    (per seed, interval over seeds) and the fraction of seeds beating flat (net PnL above flat's)."""
    base = {b.name: b.metrics for b in baselines}
    best = {k: max(base, key=lambda n: base[n][k]) for k in PNL_KEYS}
    flat = base["flat"]["pnl_quote"]
    return {
        "agent": {k: _interval([a.metrics[k] for a in agents]) for k, _, _ in COLUMNS},
        "baselines": base,
        "best_baseline": best,
        "agent_minus_best_baseline": {k: _interval([a.metrics[k] - base[best[k]][k] for a in agents])
                                      for k in PNL_KEYS},
        "beat_flat": float(np.mean([a.metrics["pnl_quote"] > flat for a in agents])),
    }


def overall_summary(per_fold: list[tuple[list[BacktestResult], list[BacktestResult]]]) -> dict:
    """All folds: agent values as [folds, seeds] (two-stage interval), baselines over folds, agent minus
    each fold's best baseline, the fraction of (fold, seed) agents beating flat and of seeds whose mean
    over folds beats flat's."""
    names = [b.name for b in per_fold[0][1]]
    agent = {k: [[a.metrics[k] for a in agents] for agents, _ in per_fold] for k, _, _ in COLUMNS}
    base = {n: {k: [next(b for b in bases if b.name == n).metrics[k] for _, bases in per_fold] for k, _, _ in COLUMNS}
            for n in names}
    best = {k: [max(bases, key=lambda b: b.metrics[k]).metrics[k] for _, bases in per_fold] for k in PNL_KEYS}
    flat = np.array(base["flat"]["pnl_quote"])
    pnl = np.array(agent["pnl_quote"], dtype=np.float64)
    return {
        "agent": {k: _interval(v) for k, v in agent.items()},
        "baselines": {n: {k: _interval(v) for k, v in m.items()} for n, m in base.items()},
        "agent_minus_best_baseline": {k: _interval(np.array(agent[k], dtype=np.float64) - np.array(best[k])[:, None])
                                      for k in PNL_KEYS},
        "beat_flat": float((pnl > flat[:, None]).mean()),
        "seeds_beating_flat_over_folds": float((pnl.mean(axis=0) > flat.mean()).mean()),
        "folds": len(per_fold),
        "seeds": pnl.shape[1],
    }


def _cell(v: dict | None, fmt: str) -> str:
    if v is None:
        return "n/a"
    if v["n"] == 1:
        return fmt.format(v["mean"])
    return f"{fmt.format(v['mean'])} [{fmt.format(v['ci95_low'])}, {fmt.format(v['ci95_high'])}]"


def _value(v, fmt: str) -> str:
    return "n/a" if v is None else fmt.format(v)


def _heads(base: str, quote: str) -> list[str]:
    return ["| strategy | " + " | ".join(units(h, base, quote) for _, h, _ in COLUMNS) + " |",
            "|---|" + "---:|" * len(COLUMNS)]


def _fold_table(s: dict, base: str, quote: str, algo: str) -> list[str]:
    lines = _heads(base, quote)
    lines.append(f"| {algo} (mean over seeds [95 % CI]) | " + " | ".join(_cell(s["agent"][k], f) for k, _, f in COLUMNS) + " |")
    for name, m in s["baselines"].items():
        lines.append(f"| {name} | " + " | ".join(_value(m[k], f) for k, _, f in COLUMNS) + " |")
    diff = s["agent_minus_best_baseline"]
    lines.append(f"| {algo} minus best baseline ({s['best_baseline']['pnl_bps_of_max_notional']}) | "
                 + " | ".join(_cell(diff[k], f) if k in diff else "" for k, _, f in COLUMNS) + " |")
    return lines


def _overall_table(s: dict, base: str, quote: str, algo: str) -> list[str]:
    lines = _heads(base, quote)
    lines.append(f"| {algo} (mean over folds and seeds [95 % CI]) | "
                 + " | ".join(_cell(s["agent"][k], f) for k, _, f in COLUMNS) + " |")
    for name, m in s["baselines"].items():
        lines.append(f"| {name} (mean over folds [95 % CI]) | " + " | ".join(_cell(m[k], f) for k, _, f in COLUMNS) + " |")
    diff = s["agent_minus_best_baseline"]
    lines.append(f"| {algo} minus each fold's best baseline | "
                 + " | ".join(_cell(diff[k], f) if k in diff else "" for k, _, f in COLUMNS) + " |")
    return lines


def write_evaluation(out_dir: Path, folds: list[Fold], agents: list[list[BacktestResult]],
                     baselines: list[list[BacktestResult]], contexts: list[dict], context: dict) -> dict:
    """evaluation.json, evaluation.md and the plots in out_dir; agents[f]: the seeds' results of fold f,
    baselines[f]: its baselines, contexts[f]: its test period (symbol, period_utc, interval_s, rows).
    Returns the JSON document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    algo = context["algo"]
    summaries = [fold_summary(a, b) for a, b in zip(agents, baselines)]
    overall = overall_summary(list(zip(agents, baselines)))
    symbols = sorted({c["symbol"] for c in contexts})
    quotes = {currencies(s)[1] for s in symbols}
    o_base, o_quote = ("base", quotes.pop()) if len(quotes) == 1 else ("base", "quote")
    if len(symbols) == 1:
        o_base = currencies(symbols[0])[0]
    doc = {"context": context, "overall": overall, "folds": []}
    lines = [
        f"# Walk-forward evaluation: {algo} on {', '.join(symbols)}",
        "",
        f"Data: {', '.join(context['data'])}; test periods {contexts[0]['period_utc']} .. {contexts[-1]['period_utc']}; "
        f"taker fee {context['taker_fee_bps']:g} bps, maker fee {context['maker_fee_bps']:g} bps; order latency "
        f"{context['order_latency_ms']:g} ms; actions {context['actions']}; order size {context['trade_size']:g} base, "
        f"position limit {context['max_position']:g} base.",
        f"Split: {context['split']}, {len(folds)} folds x {context['seeds']} seeds (seeds {context['seed']}.."
        f"{context['seed'] + context['seeds'] - 1}); each agent trained with `trader train` ({context['train']}) "
        "on the rows before its test block only.",
        "Net PnL is after fees; bps of max notional = PnL / (position limit x the first mid of the test rows). "
        "95 % intervals: percentile bootstrap of the mean over seeds (per fold) and over folds then seeds "
        "(overall), 10,000 resamples. Best baseline: the best on each fold's own test rows, chosen after the fact.",
        "",
        "## Overall",
        "",
        *_overall_table(overall, o_base, o_quote, algo),
        "",
        f"Agents beating flat (net PnL above flat's on their test block): {overall['beat_flat']:.0%} of "
        f"{overall['folds']} folds x {overall['seeds']} seeds; seeds whose mean over folds beats flat's: "
        f"{overall['seeds_beating_flat_over_folds']:.0%}."
        + ("" if len(quotes) <= 1 and o_quote != "quote" else " PnL in quote units adds different quote currencies: "
           "read the bps column."),
        "",
        "![PnL per fold](overall.png)",
        "",
        "![actions](actions.png)",
        "",
        "## Folds",
        "",
        "| fold | trained on | train rows | test data | test rows | test period (UTC) | step |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for f, c in zip(folds, contexts):
        trained_on = ", ".join("sample" if d is None else Path(d).name for d in f.train_data)
        lines.append(f"| {f.name} | {trained_on} | {'all' if f.train_rows is None else f'0..{f.train_rows - 1}'} | "
                     f"{'sample' if f.test_data is None else Path(f.test_data).name} | {f.test_start}..{f.test_end - 1} | "
                     f"{c['period_utc']} | {c['interval_s']:g} s |")
    for f, c, s, a, b in zip(folds, contexts, summaries, agents, baselines):
        base, quote = currencies(c["symbol"])
        lines += ["", f"### {f.name}: {c['symbol']}, {c['period_utc']}", "",
                  sharpe_note(c["interval_s"], f.test_end - f.test_start - 1), "",
                  *_fold_table(s, base, quote, algo), "",
                  f"Seeds beating flat: {s['beat_flat']:.0%}.", "",
                  f"![{f.name}]({f.name}_equity.png)", f"![{f.name} actions]({f.name}_actions.png)"]
        curves = [(r.name, r.equity, r.position * r.lot_size) for r in a + b]
        plot_panels(out_dir / f"{f.name}_equity.png", curves, c["interval_s"], base, quote,
                    f"{f.name}: {c['symbol']} {c['period_utc']}")
        plot_actions(out_dir / f"{f.name}_actions.png", {r.name: distribution(r) for r in a},
                     f"{f.name}: action distribution")
        doc["folds"].append({
            "name": f.name, "train_data": [str(d) for d in f.train_data], "train_rows": f.train_rows,
            "test_data": str(f.test_data), "test_start": f.test_start, "test_end": f.test_end, **c,
            "summary": s, "agents": [{"name": r.name, **r.metrics, "action_distribution": distribution(r)} for r in a],
        })
    (out_dir / "evaluation.md").write_text("\n".join(lines) + "\n")
    (out_dir / "evaluation.json").write_text(json.dumps(doc, indent=2))
    _plot_overall(out_dir, folds, summaries, algo)
    pooled = [distribution(r) for fold in agents for r in fold]
    plot_actions(out_dir / "actions.png", {f"{algo}, all agents": {k: float(np.mean([d[k] for d in pooled]))
                                                                   for k in pooled[0]}},
                 "Action distribution over every fold and seed")
    return doc


def _plot_overall(out_dir: Path, folds: list[Fold], summaries: list[dict], algo: str) -> None:
    """Net PnL in bps of max notional per fold: the agent's mean with its interval, flat and the best baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "pnl_bps_of_max_notional"
    x = np.arange(len(folds))
    mean = np.array([s["agent"][key]["mean"] for s in summaries])
    err = np.array([[s["agent"][key]["mean"] - s["agent"][key]["ci95_low"],
                     s["agent"][key]["ci95_high"] - s["agent"][key]["mean"]] for s in summaries]).T
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(folds)), 4))
    ax.bar(x - 0.25, mean, 0.25, yerr=err.tolist(), capsize=3, label=f"{algo} (mean over seeds, 95 % CI)")
    ax.bar(x, [s["baselines"][s["best_baseline"][key]][key] for s in summaries], 0.25, label="best baseline")
    ax.bar(x + 0.25, [s["baselines"]["flat"][key] for s in summaries], 0.25, label="flat")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [f.name for f in folds], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("net PnL (bps of max notional)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "overall.png", dpi=110)
    plt.close(fig)
