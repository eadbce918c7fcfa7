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
    name: str
    equity: np.ndarray  # quote, one value per row from the start
    position: np.ndarray  # lots
    fees: float
    trades: int
    traded_lots: int
    notional_traded: float
    metrics: dict = field(default_factory=dict)


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
    latency = int(env_config.get("latency_steps", 0))
    horizon = end - start - latency - 1
    if horizon < 2:
        raise ValueError(f"backtest period rows {start}..{end} is too short")
    cfg = dict(env_config, horizon=horizon, start_min=start, start_max=start)
    env = TradingVectorEnv(market, num_envs=1, seed=0, **cfg)
    K = env.num_agents
    obs, info = env.reset(seed=0)
    per = lambda key: np.atleast_1d(np.asarray(info[key][0]))  # noqa: E731  (one value per agent)
    equity = [per("equity").astype(float)]
    position = [per("position").astype(np.int64)]
    trades = np.zeros(K, dtype=np.int64)
    traded = np.zeros(K, dtype=np.int64)
    notional = np.zeros(K)
    mid_px = 0.5 * (market.book[:, 0, 0] + market.book[:, 0, 2]) * market.tick_size
    for _ in range(horizon):
        t = int(info["t"][0])
        obs, reward, term, trunc, info = env.step(policy(obs, info))
        filled = np.abs(per("filled"))
        trades += filled > 0
        traded += filled
        notional += filled * market.lot_size * mid_px[t]
        equity.append(per("equity").astype(float))
        position.append(per("position").astype(np.int64))
        if term[0] or trunc[0]:
            break
    fees = per("fees").astype(float)
    eq, pos = np.array(equity), np.array(position)
    results = [BacktestResult(name if K == 1 else f"{name}/agent_{k}", eq[:, k], pos[:, k], float(fees[k]),
                              int(trades[k]), int(traded[k]), float(notional[k])) for k in range(K)]
    return results[0] if K == 1 else results


def compute_metrics(res: BacktestResult, interval_s: float, initial_cash: float) -> dict:
    eq = res.equity
    rets = np.diff(eq) / eq[:-1]
    per_year = SECONDS_PER_YEAR / interval_s
    std = rets.std()
    sharpe = float(rets.mean() / std * np.sqrt(per_year)) if std > 0 else 0.0
    peak = np.maximum.accumulate(eq)
    drawdown = (eq - peak) / peak
    res.metrics = {
        "total_return_pct": float((eq[-1] / eq[0] - 1) * 100),
        "sharpe_annualized": sharpe,
        "max_drawdown_pct": float(drawdown.min() * 100),
        "turnover": float(res.notional_traded / initial_cash),
        "fees_paid": float(res.fees),
        "trades": int(res.trades),
        "final_position_lots": int(res.position[-1]),
        "steps": int(len(eq) - 1),
    }
    return res.metrics
