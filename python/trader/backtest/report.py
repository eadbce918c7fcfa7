"""Backtest report: two metric tables (Markdown and JSON) and equity / inventory / drawdown curves (PNG).

Units are in the column headers: the instrument's base and quote currencies (BTC and USDT for BTCUSDT),
or the words base and quote when the symbol does not show them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trader.backtest.engine import MARKOUTS_S, BacktestResult

_QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "BTC", "ETH", "EUR")

# (metric key, column header, format); None values print as n/a
_RESULTS = [
    ("pnl_quote", "PnL (quote)", "{:+.4f}"),
    ("pnl_bps_of_notional", "PnL (bps of traded notional)", "{:+.2f}"),
    ("pnl_bps_of_max_notional", "PnL (bps of max position notional)", "{:+.2f}"),
    ("sharpe_period", "Sharpe over the period", "{:+.2f}"),
    ("max_drawdown_quote", "max drawdown (quote)", "{:.4f}"),
    ("turnover", "turnover (x max position notional)", "{:.2f}"),
    ("maker_fees", "maker fees (quote)", "{:+.4f}"),
    ("taker_fees", "taker fees (quote)", "{:.4f}"),
]
_EXECUTION = [
    ("maker_volume_base", "maker volume (base)", "{:.6g}"),
    ("maker_volume_quote", "maker volume (quote)", "{:.2f}"),
    ("taker_volume_base", "taker volume (base)", "{:.6g}"),
    ("taker_volume_quote", "taker volume (quote)", "{:.2f}"),
    ("quoted_base", "quoted (base)", "{:.6g}"),
    ("fill_ratio", "fill ratio (filled / quoted)", "{:.3f}"),
    ("trades", "steps with fills", "{:.4g}"),
    ("mean_abs_inventory_base", "mean abs inventory (base)", "{:.6g}"),
    ("max_abs_inventory_base", "max abs inventory (base)", "{:.6g}"),
    ("time_at_limit_pct", "time at the limit (% of steps)", "{:.1f}"),
    ("final_position_base", "final position (base)", "{:+.6g}"),
]
# the PnL split in two (trader.backtest.engine.compute_metrics): their sum is the PnL
_ATTRIBUTION = [
    ("pnl_inventory_quote", "inventory: position x mid move (quote)", "{:+.4f}"),
    ("pnl_fills_quote", "fills against the next mid, net of fees (quote)", "{:+.4f}"),
    ("pnl_inventory_bps_of_max_notional", "inventory (bps of max position notional)", "{:+.2f}"),
    ("pnl_fills_bps_of_max_notional", "fills, net of fees (bps of max position notional)", "{:+.2f}"),
    *[(f"fills_marked_{h}s_bps_of_max_notional", f"fills marked {h} s later (bps of max position notional)", "{:+.2f}")
      for h in MARKOUTS_S],
]


# every metric column of a report, by metric key (trader.evaluate picks its columns from here)
COLUMNS = {key: (head, fmt) for key, head, fmt in _RESULTS + _EXECUTION + _ATTRIBUTION}


def currencies(symbol: str) -> tuple[str, str]:
    """(base, quote) of a symbol such as BTCUSDT; ("base", "quote") when it cannot be split."""
    for q in _QUOTE_ASSETS:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return "base", "quote"


def period_text(context: dict) -> str:
    """", 2024-08-08 00:00:00 to 00:54:00 UTC" from the context's period_utc (start, end), if any."""
    period = context.get("period_utc")
    return f", {period[0]} to {period[1]} UTC" if period else ""


def risk_text(env: dict) -> str:
    """The env's risk rules when on, else "": ", move guard: 60 s windows, 5 sigmas, ..." (cpp/env/move_guard.h),
    ", position cap 1 trade size(s)" (position_cap_trades) and ", positions closed 10 s after the last flat"
    (max_hold_ns), ", positions quoted out at the touch" (quote_exit_touch)."""
    out, window, cap = "", env.get("guard_window_ns", 0) or 0, env.get("position_cap_trades", 0) or 0
    hold = env.get("max_hold_ns", 0) or 0
    if window:
        out += (f", move guard: {window / 1e9:g} s windows, {env['guard_sigmas']:g} sigmas, volatility half-life "
                f"{env['guard_halflife_ns'] / 1e9:g} s, held {env['guard_hold_ns'] / 1e9:g} s")
        if env.get("guard_sides") == "against_move":
            out += ", barring only the position against the move"
    if cap:
        out += f", position cap {cap} trade size(s)"
    if hold:
        out += f", positions closed {hold / 1e9:g} s after the last flat"
    if env.get("quote_exit_touch"):
        out += ", positions quoted out at the touch"
    return out


def title(context: dict) -> str:
    """What was tested and under which costs: symbol, data, fees, latency (and the risk rules, when on)."""
    latency = context.get("order_latency_ns", 0) or 0
    return (f"{context.get('symbol', '')} on {context.get('data')}, maker {context.get('maker_fee_bps', 0.0)} bps / "
            f"taker {context.get('taker_fee_bps', 0.0)} bps, order latency {latency / 1e6:g} ms{risk_text(context)}")


def _table(results: list[BacktestResult], columns: list, base: str, quote: str) -> list[str]:
    heads = [c[1].replace("(quote)", f"({quote})").replace("(base)", f"({base})") for c in columns]
    lines = ["| strategy | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(columns)]
    for r in results:
        cells = ["n/a" if r.metrics[k] is None else fmt.format(r.metrics[k]) for k, _, fmt in columns]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return lines


def write_report(out_dir: Path, results: list[BacktestResult], context: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    table = {r.name: r.metrics for r in results}
    (out_dir / "backtest.json").write_text(json.dumps({"context": context, "results": table}, indent=2))
    base, quote = currencies(context.get("symbol", ""))
    lines = [
        f"# Backtest: {title(context)}",
        "",
        f"Data: {context.get('data')}; held-out rows {context['start']}..{context['end']} "
        f"({context['steps']} steps of {context['interval_s']} s{period_text(context)}); "
        f"actions {context.get('actions', 'discrete')}; base = {base}, quote = {quote}.",
        f"Sharpe over the period = mean / std of the PnL per {context['interval_s']} s step x sqrt({context['steps']} "
        "steps): the period's own Sharpe ratio, not annualized. Max position notional = the position limit at the "
        f"period's mean mid. Volumes in {quote} are valued at the mid of the row each step started from.",
        "",
        "## Result",
        "",
        *_table(results, _RESULTS, base, quote),
        "",
        "## Execution and inventory",
        "",
        *_table(results, _EXECUTION, base, quote),
        "",
        "## Where the PnL came from",
        "",
        "Inventory: the position held over each step times the move of the mid the env marks at (a directional "
        "bet). Fills: what the fills earned against the mid after them, net of fees (spread captured minus "
        "adverse selection within the step). The two add up to the PnL. Markouts value each step's net fill at "
        "the mid some seconds after it instead: an edge that falls with the horizon is adverse selection.",
        "",
        *_table(results, _ATTRIBUTION, base, quote),
    ]
    if context.get("baseline_notes"):
        lines += ["", "## Baselines", ""] + [f"- {n}" for n in context["baseline_notes"]]
    (out_dir / "backtest.md").write_text("\n".join(lines) + "\n")

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    t = np.arange(max(len(r.equity) for r in results)) * context["interval_s"]
    for r in results:
        n = len(r.equity)
        ax1.plot(t[:n], r.equity - r.equity[0], label=r.name, lw=1.2)
        ax2.plot(t[:n], r.position * r.lot_size, label=r.name, lw=1.0)
        peak = np.maximum.accumulate(r.equity)
        ax3.plot(t[:n], r.equity - peak, label=r.name, lw=1.0)
    ax1.set_ylabel(f"PnL ({quote})")
    ax1.legend(loc="best", fontsize=8)
    ax1.set_title(f"Held-out backtest: {title(context)}", fontsize=9)
    ax2.set_ylabel(f"inventory ({base})")
    ax3.set_ylabel(f"drawdown ({quote})")
    ax3.set_xlabel("seconds from the start of the held-out period")
    fig.tight_layout()
    fig.savefig(out_dir / "equity.png", dpi=110)
    plt.close(fig)
    return table
