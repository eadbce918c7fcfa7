"""Backtest report: metrics table (Markdown and JSON) and equity / drawdown curves (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trader.backtest.engine import BacktestResult

_COLUMNS = [
    ("total_return_pct", "return %", "{:+.4f}"),
    ("sharpe_annualized", "Sharpe (ann.)", "{:+.2f}"),
    ("max_drawdown_pct", "max DD %", "{:.4f}"),
    ("turnover", "turnover", "{:.3f}"),
    ("fees_paid", "fees", "{:.2f}"),
    ("trades", "trades", "{:d}"),
]


def write_report(out_dir: Path, results: list[BacktestResult], context: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    table = {r.name: r.metrics for r in results}
    (out_dir / "backtest.json").write_text(json.dumps({"context": context, "results": table}, indent=2))
    lines = [
        "# Backtest",
        "",
        f"Data: {context.get('data')}; held-out rows {context['start']}..{context['end']} "
        f"({context['steps']} steps of {context['interval_s']} s); fee {context['fee_bps']} bps, "
        f"latency {context['latency_steps']} steps; initial cash {context['initial_cash']:g} quote.",
        f"Sharpe is annualized from {context['interval_s']} s returns over 365 x 24 h.",
        "",
        "| strategy | " + " | ".join(c[1] for c in _COLUMNS) + " |",
        "|---|" + "---:|" * len(_COLUMNS),
    ]
    for r in results:
        lines.append(f"| {r.name} | " + " | ".join(fmt.format(r.metrics[k]) for k, _, fmt in _COLUMNS) + " |")
    (out_dir / "backtest.md").write_text("\n".join(lines) + "\n")

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    t = np.arange(max(len(r.equity) for r in results)) * context["interval_s"]
    for r in results:
        ax1.plot(t[: len(r.equity)], r.equity, label=r.name, lw=1.2)
        peak = np.maximum.accumulate(r.equity)
        ax2.plot(t[: len(r.equity)], (r.equity - peak) / peak * 100, label=r.name, lw=1.0)
    ax1.set_ylabel("equity (quote)")
    ax1.legend(loc="best")
    ax1.set_title(f"Held-out backtest: {context.get('symbol', '')}")
    ax2.set_ylabel("drawdown %")
    ax2.set_xlabel("seconds from the start of the held-out period")
    fig.tight_layout()
    fig.savefig(out_dir / "equity.png", dpi=110)
    plt.close(fig)
    return table
