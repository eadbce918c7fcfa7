"""Backtests on a held-out period with the env's own execution model (walking the book, fees, latency).

A backtest is one episode of one C++ env that starts at the first row of the period and runs to its
end; the policy acts at every row and sees only rows up to the current one (the env serves row t's
features at step t). The baselines (trader.backtest.baselines) run through the same env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trader.sim.env import Market, TradingVectorEnv

Policy = Callable[[np.ndarray, dict], np.ndarray]  # (obs [1, D], info) -> actions [1] or [1, 1]

SECONDS_PER_YEAR = 365.0 * 24 * 3600  # crypto trades around the clock


@dataclass
class BacktestResult:
    """One strategy over the held-out rows (one agent). Lots and ticks as in the env; notional in
    quote currency, valued at the mid of the row at which each step started (the env reports filled
    lots, not fill prices)."""

    name: str
    equity: np.ndarray  # quote, one value per row from the start
    position: np.ndarray  # lots, one value per row from the start
    lot_size: float  # base per lot
    max_position_lots: int  # the env's position limit
    maker_fees: float  # quote (negative: rebates)
    taker_fees: float  # quote
    maker_lots: int  # filled by resting limit orders
    taker_lots: int  # filled by market orders
    maker_notional: float  # quote, at mid
    taker_notional: float  # quote, at mid
    quoted_lots: int  # lots of new limit orders sent
    rejected: int  # post-only orders rejected (they would have crossed)
    trades: int  # steps with at least one fill
    metrics: dict = field(default_factory=dict)

    @property
    def fees(self) -> float:
        return self.maker_fees + self.taker_fees

    @property
    def traded_lots(self) -> int:
        return self.maker_lots + self.taker_lots

    @property
    def notional_traded(self) -> float:
        return self.maker_notional + self.taker_notional


def held_out_rows(n_rows: int, train_fraction: float, gap: int) -> tuple[int, int]:
    """The held-out period: rows after the training fraction plus a gap (the training episodes
    never reach it: they end before train_end)."""
    start = int(n_rows * train_fraction) + gap
    if start >= n_rows - 3:
        raise ValueError(f"train_fraction {train_fraction} and gap {gap} leave no held-out rows of {n_rows}")
    return start, n_rows - 1


def run_backtest(market: Market, policy: Policy, name: str, *, start: int, end: int,
                 **env_config) -> BacktestResult | list[BacktestResult]:
    """One episode over rows start..end. With num_agents K > 1 the policy acts for all agents
    (actions [1, K]) in one shared book and one result per agent comes back."""
    horizon = end - start - 1
    if horizon < 2:
        raise ValueError(f"backtest period rows {start}..{end} is too short")
    cfg = dict(env_config, horizon=horizon, start_min=start, start_max=start)
    env = TradingVectorEnv(market, num_envs=1, seed=0, **cfg)
    K = env.num_agents
    obs, info = env.reset(seed=0)
    per = lambda key: np.atleast_1d(np.asarray(info[key][0]))  # noqa: E731  (one value per agent)
    equity = [per("equity").astype(float)]
    position = [per("position").astype(np.int64)]
    count = {key: np.zeros(K, dtype=np.int64) for key in ("trades", "maker", "taker", "quoted", "rejected")}
    maker_notional, taker_notional = np.zeros(K), np.zeros(K)
    mid_px = 0.5 * (market.book[:, 0, 0] + market.book[:, 0, 2]) * market.tick_size
    for _ in range(horizon):
        t = int(info["t"][0])
        obs, reward, term, trunc, info = env.step(policy(obs, info))
        maker, taker = np.abs(per("maker_filled")), np.abs(per("taker_filled"))
        count["trades"] += (maker + taker) > 0
        count["maker"] += maker
        count["taker"] += taker
        count["quoted"] += per("quoted")
        count["rejected"] += per("rejected")
        maker_notional += maker * market.lot_size * mid_px[t]
        taker_notional += taker * market.lot_size * mid_px[t]
        equity.append(per("equity").astype(float))
        position.append(per("position").astype(np.int64))
        if term[0] or trunc[0]:
            break
    maker_fees, taker_fees = per("maker_fees").astype(float), per("taker_fees").astype(float)
    eq, pos = np.array(equity), np.array(position)
    max_lots = round(env.env_config["max_position"] / market.lot_size)
    results = [BacktestResult(name if K == 1 else f"{name}/agent_{k}", eq[:, k], pos[:, k], market.lot_size, max_lots,
                              float(maker_fees[k]), float(taker_fees[k]), int(count["maker"][k]),
                              int(count["taker"][k]), float(maker_notional[k]), float(taker_notional[k]),
                              int(count["quoted"][k]), int(count["rejected"][k]), int(count["trades"][k]))
               for k in range(K)]
    return results[0] if K == 1 else results


def compute_metrics(res: BacktestResult, interval_s: float, initial_cash: float) -> dict:
    """PnL (quote currency, bps of traded notional), return and risk, execution and inventory."""
    eq = res.equity
    rets = np.diff(eq) / eq[:-1]
    per_year = SECONDS_PER_YEAR / interval_s
    std = rets.std()
    sharpe = float(rets.mean() / std * np.sqrt(per_year)) if std > 0 else 0.0
    peak = np.maximum.accumulate(eq)
    drawdown = (eq - peak) / peak
    pnl = float(eq[-1] - eq[0])
    notional = res.notional_traded
    inventory = np.abs(res.position)
    res.metrics = {
        "pnl_quote": pnl,
        "pnl_bps_of_notional": pnl / notional * 1e4 if notional > 0 else None,
        "total_return_pct": float((eq[-1] / eq[0] - 1) * 100),
        "sharpe_annualized": sharpe,
        "max_drawdown_pct": float(drawdown.min() * 100),
        "turnover": float(notional / initial_cash),
        "fees_paid": float(res.fees),
        "maker_fees": float(res.maker_fees),
        "taker_fees": float(res.taker_fees),
        "maker_volume_base": res.maker_lots * res.lot_size,
        "maker_volume_quote": float(res.maker_notional),
        "taker_volume_base": res.taker_lots * res.lot_size,
        "taker_volume_quote": float(res.taker_notional),
        "quoted_base": res.quoted_lots * res.lot_size,
        # filled / quoted (issue 11): maker lots filled per lot of limit orders sent
        "fill_ratio": res.maker_lots / res.quoted_lots if res.quoted_lots > 0 else None,
        "rejected": int(res.rejected),
        "trades": int(res.trades),
        "mean_abs_inventory_base": float(inventory.mean() * res.lot_size),
        "max_abs_inventory_base": float(inventory.max() * res.lot_size),
        "time_at_limit_pct": float((inventory >= res.max_position_lots).mean() * 100),
        "final_position_base": float(res.position[-1] * res.lot_size),
        "steps": int(len(eq) - 1),
    }
    return res.metrics


# Set by the backtest itself (the episode window and the agents) or from the market (its grid).
_NOT_FROM_RUN = ("horizon", "start_min", "start_max", "num_agents", "tick_size", "lot_size")


def env_config_from_run(args: dict, **overrides) -> dict:
    """The env options a training run used (its saved arguments, old option names translated by
    trader.sim.spec.from_legacy), with the non-None overrides on top."""
    from trader.sim import spec

    known = {o.name for o in spec.options()} - set(_NOT_FROM_RUN)
    legacy = set(spec.LEGACY_NAMES) | {"continuous", "latency_steps"}
    args = {k: v for k, v in args.items() if v is not None}  # None: the run left the option at its default
    if args.get("order_latency_ms"):  # trader train's flag: entry and cancel latency in ms
        args["order_latency_ns"] = args["cancel_latency_ns"] = round(args["order_latency_ms"] * 1e6)
    cfg = spec.from_legacy({k: v for k, v in args.items() if k in known or k in legacy})
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg
