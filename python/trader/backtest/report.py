"""Backtest report: metric tables (Markdown and JSON), equity / inventory / drawdown panels and the
action distribution (PNG); the pieces `trader evaluate`'s report reuses (currencies, title, panels,
action distribution).

Units are in the column headers: the instrument's base and quote currencies (BTC and USDT for BTCUSDT),
or the words base and quote when the symbol does not show them. PnL is in quote currency and in bps of
the notional the position limit allows, never in percent of the env's arbitrary starting cash.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trader.backtest.engine import BASELINES, BacktestResult

_QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "BTC", "ETH", "EUR")

# (metric key, column header, format); None values print as n/a
RESULTS = [
    ("pnl_quote", "net PnL (quote)", "{:+.4f}"),
    ("pnl_bps_of_max_notional", "net PnL (bps of max notional)", "{:+.2f}"),
    ("pnl_bps_of_notional", "net PnL (bps of traded notional)", "{:+.2f}"),
    ("sharpe_per_step", "Sharpe per step", "{:+.4f}"),
    ("sharpe_period", "Sharpe over the period", "{:+.2f}"),
    ("max_drawdown_quote", "max drawdown (quote)", "{:.4f}"),
    ("turnover", "turnover (x max notional)", "{:.2f}"),
    ("fees_paid", "fees (quote)", "{:+.4f}"),
]
EXECUTION = [
    ("maker_volume_base", "maker volume (base)", "{:.6g}"),
    ("taker_volume_base", "taker volume (base)", "{:.6g}"),
    ("taker_volume_quote", "taker volume (quote)", "{:.2f}"),
    ("maker_fees", "maker fees (quote)", "{:+.4f}"),
    ("taker_fees", "taker fees (quote)", "{:.4f}"),
    ("quoted_base", "quoted (base)", "{:.6g}"),
    ("fill_ratio", "fill ratio (filled / quoted)", "{:.3f}"),
    ("trades", "steps with fills", "{:d}"),
    ("mean_abs_inventory_base", "mean abs inventory (base)", "{:.6g}"),
    ("max_abs_inventory_base", "max abs inventory (base)", "{:.6g}"),
    ("time_at_limit_pct", "time at the limit (% of steps)", "{:.1f}"),
    ("final_position_base", "final position (base)", "{:+.6g}"),
]


def currencies(symbol: str) -> tuple[str, str]:
    """(base, quote) of a symbol such as BTCUSDT; ("base", "quote") when it cannot be split."""
    for q in _QUOTE_ASSETS:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return "base", "quote"


def period_utc(market, start: int, end: int) -> str:
    """The UTC span of rows start..end - 1 of a market, e.g. 2024-08-08 23:58:12 to 23:59:06 UTC."""
    from datetime import datetime, timezone

    a, b = (datetime.fromtimestamp(int(market.ts[i]) / 1e9, tz=timezone.utc) for i in (start, end - 1))
    tail = b.strftime("%H:%M:%S") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M:%S")
    return f"{a:%Y-%m-%d %H:%M:%S} to {tail} UTC"


def units(header: str, base: str, quote: str) -> str:
    return header.replace("(quote)", f"({quote})").replace("(base)", f"({base})")


def title(context: dict) -> str:
    """`data, period, fees and latency` in one line (issue 13: a report names what it was run on)."""
    return (f"{context.get('symbol', '')} on {context.get('data')}, {context.get('period_utc', 'period n/a')}; "
            f"taker fee {context.get('taker_fee_bps', 0.0):g} bps, maker fee {context.get('maker_fee_bps', 0.0):g} "
            f"bps; order latency {context.get('order_latency_ns', 0) / 1e6:g} ms")


def sharpe_note(interval_s: float, steps: int) -> str:
    return (f"Sharpe: mean / std of the PnL change per {interval_s:g} s step (per step), and that times "
            f"sqrt({steps} steps) over the {steps * interval_s:g} s period; not annualized (the JSON has "
            f"sharpe_annualized next to sharpe_interval_s and period_s).")


def _table(results: list[BacktestResult], columns: list, base: str, quote: str) -> list[str]:
    heads = [units(c[1], base, quote) for c in columns]
    lines = ["| strategy | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(columns)]
    for r in results:
        cells = ["n/a" if r.metrics[k] is None else fmt.format(r.metrics[k]) for k, _, fmt in columns]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return lines


def action_distribution(actions: np.ndarray, action_type: str, quote_levels: int) -> dict[str, float]:
    """Fraction of steps per action: hold / buy / sell (discrete), target-position buckets (continuous),
    and per side the quote offset index or `none` (quote; quote_continuous by its buckets)."""
    a = np.asarray(actions)
    n = max(len(a), 1)
    if action_type == "discrete":
        flat = a.reshape(len(a), -1)[:, 0].astype(int)
        return {name: float((flat == i).sum() / n) for i, name in enumerate(("hold", "buy", "sell"))}
    if action_type == "continuous":
        x = np.clip(a.reshape(len(a), -1)[:, 0].astype(float), -1, 1)
        edges = np.linspace(-1, 1, 9)
        counts, _ = np.histogram(x, edges)
        return {f"target {lo:+.2f}..{hi:+.2f}": float(c / n) for lo, hi, c in zip(edges[:-1], edges[1:], counts)}
    from trader.sim import spec

    L = int(quote_levels)
    if action_type == "quote":
        sides = np.array([spec.decode_quote(int(v), quote_levels=L)[:2] for v in a.reshape(len(a), -1)[:, 0]])
    else:  # quote_continuous: x in [-1, 1] -> index floor((x + 1) / 2 * (L + 1)) clipped to L (trader.sim.spec)
        x = a.reshape(len(a), -1)[:, :2].astype(float)
        sides = np.clip(np.floor((x + 1) / 2 * (L + 1)), 0, L).astype(int)
    out = {}
    for s, side in enumerate(("bid", "ask")):
        for i in range(L + 1):
            out[f"{side} {'none' if i == L else f'level {i}'}"] = float((sides[:, s] == i).sum() / n) if len(a) else 0.0
    return out


def distribution(result: BacktestResult) -> dict[str, float]:
    """The action distribution of one backtest, in the action space of the env it ran in."""
    return action_distribution(result.actions, result.env_config["actions"], result.env_config["quote_levels"])


def plot_panels(path: Path, curves: list[tuple[str, np.ndarray, np.ndarray]], interval_s: float, base: str,
                quote: str, heading: str) -> None:
    """Equity (PnL from the start), inventory and drawdown panels; curves: (label, equity quote, position base)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for label, equity, position in curves:
        t = np.arange(len(equity)) * interval_s
        ax1.plot(t, equity - equity[0], label=label, lw=1.2)
        ax2.plot(t, position, label=label, lw=1.0)
        ax3.plot(t, equity - np.maximum.accumulate(equity), label=label, lw=1.0)
    ax1.set_ylabel(f"net PnL ({quote})")
    ax1.legend(loc="best", fontsize=7)
    ax1.set_title(heading, fontsize=9)
    ax2.set_ylabel(f"inventory ({base})")
    ax3.set_ylabel(f"drawdown ({quote})")
    ax3.set_xlabel("seconds from the start of the test period")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_actions(path: Path, distributions: dict[str, dict[str, float]], heading: str) -> None:
    """One bar group per strategy: the fraction of steps of each action."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(next(iter(distributions.values())).keys()) if distributions else []
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(labels) * max(len(distributions), 1)), 4))
    width = 0.8 / max(len(distributions), 1)
    for i, (name, dist) in enumerate(distributions.items()):
        ax.bar(np.arange(len(labels)) + i * width, [dist[k] for k in labels], width, label=name)
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("fraction of steps")
    ax.set_title(heading, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path, results: list[BacktestResult], context: dict) -> dict:
    """backtest.md, backtest.json, equity.png (PnL, inventory, drawdown) and actions.png in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    actions = context.get("actions", "discrete")
    dists = {r.name: distribution(r) for r in results}
    agents = {r.name: dists[r.name] for r in results if r.name not in BASELINES}
    table = {r.name: r.metrics for r in results}
    (out_dir / "backtest.json").write_text(json.dumps(
        {"context": context, "results": table, "action_distribution": dists}, indent=2))
    base, quote = currencies(context.get("symbol", ""))
    max_notional = results[0].metrics.get("max_notional_quote", 0.0) if results else 0.0
    lines = [
        f"# Backtest: {title(context)}",
        "",
        f"Held-out rows {context['start']}..{context['end']} ({context['steps']} steps of {context['interval_s']:g} s); "
        f"actions {actions}; order size {context.get('trade_size', 'n/a')} {base}, position limit "
        f"{context.get('max_position', 'n/a')} {base} (max notional {max_notional:,.2f} {quote} at the first mid). "
        f"base = {base}, quote = {quote}.",
        sharpe_note(context["interval_s"], context["steps"]),
        f"Volumes in {quote} are valued at the mid of the row each step started from.",
        "",
        "## Result",
        "",
        *_table(results, RESULTS, base, quote),
        "",
        "## Execution and inventory",
        "",
        *_table(results, EXECUTION, base, quote),
        "",
        "## Action distribution (fraction of steps)",
        "",
        *[f"- {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in d.items() if v > 0) for name, d in agents.items()],
    ]
    if context.get("baseline_notes"):
        lines += ["", "## Baselines", ""] + [f"- {n}" for n in context["baseline_notes"]]
    (out_dir / "backtest.md").write_text("\n".join(lines) + "\n")
    curves = [(r.name, r.equity, r.position * r.lot_size) for r in results]
    plot_panels(out_dir / "equity.png", curves, context["interval_s"], base, quote, f"Held-out backtest: {title(context)}")
    plot_actions(out_dir / "actions.png", agents or dists, "Action distribution")
    return table

