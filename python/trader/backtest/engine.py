"""Backtests on a held-out period with the env's own execution model (walking the book, fees, latency).

A backtest is one episode of one C++ env that starts at the first row of the period and runs to its
end; the policy acts at every row and sees only rows up to the current one (the env serves row t's
features at step t). The baselines (trader.backtest.baselines) run through the same env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trader.sim import spec
from trader.sim.env import Market, TradingVectorEnv

Policy = Callable[[np.ndarray, dict], np.ndarray]  # (obs [1, D], info) -> actions [1] or [1, 1]


@dataclass
class BacktestResult:
    """One strategy over the held-out rows (one agent). Lots and ticks as in the env; notional in
    quote currency, valued at the mid of the row at which each step started (the env reports filled
    lots, not fill prices)."""

    name: str
    equity: np.ndarray  # quote, one value per row from the start
    position: np.ndarray  # lots, one value per row from the start
    mid: np.ndarray  # quote per base, one value per row from the start: the mid the env marks equity at
    lot_size: float  # base per lot
    max_position_lots: int  # the position the env lets orders reach (its limit, or the tighter position cap)
    maker_fees: float  # quote (negative: rebates)
    taker_fees: float  # quote
    maker_lots: int  # filled by resting limit orders
    taker_lots: int  # filled by market orders
    maker_notional: float  # quote, at mid
    taker_notional: float  # quote, at mid
    quoted_lots: int  # lots of new limit orders sent
    rejected: int  # post-only orders rejected (they would have crossed)
    trades: int  # steps with at least one fill
    max_notional: float  # quote: the position limit valued at the period's mean mid (the capital at risk)
    actions: np.ndarray  # the policy's action at every step (for the action distribution)
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


def period_utc(market: Market, start: int, end: int) -> tuple[str, str]:
    """The UTC times of rows start and end (the market's clock, ns)."""
    import datetime as dt

    def fmt(ns: int) -> str:
        return dt.datetime.fromtimestamp(int(ns) / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return fmt(market.ts[start]), fmt(market.ts[end])


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
    actions = []
    for _ in range(horizon):
        t = int(info["t"][0])
        action = np.asarray(policy(obs, info))
        actions.append(action[0])
        obs, reward, term, trunc, info = env.step(action)
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
    env_cfg = env.env_config
    trade_lots, max_lots = spec.size_lots(env_cfg, market.lot_size, spec.reference_price(market.book, market.tick_size))
    max_base = max_lots * market.lot_size if env_cfg["trade_notional"] > 0 else env_cfg["max_position"]
    max_notional = float(max_base * mid_px[start:end + 1].mean())
    acts = np.asarray(actions)
    mid = mid_px[start:start + len(eq)]  # step i goes from row start + i to the next and marks equity there
    limit = spec.order_limit_lots(env_cfg, trade_lots, max_lots)
    results = [BacktestResult(name if K == 1 else f"{name}/agent_{k}", eq[:, k], pos[:, k], mid, market.lot_size, limit,
                              float(maker_fees[k]), float(taker_fees[k]), int(count["maker"][k]),
                              int(count["taker"][k]), float(maker_notional[k]), float(taker_notional[k]),
                              int(count["quoted"][k]), int(count["rejected"][k]), int(count["trades"][k]),
                              max_notional, acts if K == 1 else acts[:, k])
               for k in range(K)]
    return results[0] if K == 1 else results


MARKOUTS_S = (10, 60, 300)  # seconds after a fill at which its markouts value it


def compute_metrics(res: BacktestResult, interval_s: float) -> dict:
    """PnL in quote currency, in bps of the traded notional and of the notional the strategy may hold
    (its position limit at the period's mean mid); the Sharpe ratio of the period (mean / std of the
    PnL per step x sqrt(steps): not annualized, issue 13); drawdown, turnover, execution, inventory."""
    eq = res.equity
    step_pnl = np.diff(eq)
    std = step_pnl.std()
    sharpe_step = float(step_pnl.mean() / std) if std > 0 else 0.0
    peak = np.maximum.accumulate(eq)
    drawdown = float((eq - peak).min())
    pnl = float(eq[-1] - eq[0])
    # PnL attribution of market making (e.g. Gueant, The Financial Mathematics of Market Liquidity, 2016):
    # inventory = the position held over each step times the mid's move (a directional bet); the rest is
    # what the fills earned against the mid the env marks at after them, net of fees (spread captured
    # minus adverse selection within the step).
    inventory_pnl = float(np.sum(res.position[:-1] * res.lot_size * np.diff(res.mid)))
    # Markouts: each step's (net) fill valued at the mid MARKOUTS_S later instead (the last row's beyond the end);
    # an edge that falls with the horizon is adverse selection, the fills' share of the inventory part.
    bought = np.diff(res.position) * res.lot_size  # base, filled in step i and marked at mid[i + 1]
    marked = np.arange(1, len(res.mid))  # the row each step's fills are marked at

    def markout(seconds: float) -> float:
        later = np.minimum(marked + max(1, round(seconds / interval_s)), len(res.mid) - 1)
        return pnl - inventory_pnl + float(np.sum(bought * (res.mid[later] - res.mid[marked])))
    notional = res.notional_traded
    inventory = np.abs(res.position)
    cap = res.max_notional
    res.metrics = {
        "pnl_quote": pnl,
        "pnl_bps_of_notional": pnl / notional * 1e4 if notional > 0 else None,
        "pnl_bps_of_max_notional": pnl / cap * 1e4,
        "pnl_inventory_quote": inventory_pnl,
        "pnl_fills_quote": pnl - inventory_pnl,
        "pnl_inventory_bps_of_max_notional": inventory_pnl / cap * 1e4,
        "pnl_fills_bps_of_max_notional": (pnl - inventory_pnl) / cap * 1e4,
        **{f"fills_marked_{h}s_bps_of_max_notional": markout(h) / cap * 1e4 for h in MARKOUTS_S},
        "sharpe_period": sharpe_step * float(np.sqrt(len(step_pnl))),
        "sharpe_per_step": sharpe_step,
        "step_s": float(interval_s),
        "period_s": float(interval_s * len(step_pnl)),
        "max_drawdown_quote": drawdown,
        "max_drawdown_bps_of_max_notional": drawdown / cap * 1e4,
        "turnover": float(notional / cap),
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
    """The env options a training run used (its saved arguments, an older run's names translated by
    trader.sim.spec.from_legacy), with the non-None overrides on top."""
    from trader.sim import spec

    known = {o.name for o in spec.options()} - set(_NOT_FROM_RUN)
    saved = spec.from_legacy({k: v for k, v in args.items() if v is not None})  # None: left at the default
    cfg = {k: v for k, v in saved.items() if k in known}
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg
