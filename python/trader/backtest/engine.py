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
    actions: np.ndarray  # the actions sent, one row per step
    max_notional: float  # quote: the position limit valued at the mid of the first row
    env_config: dict  # every option of the env it ran in (trader.sim.spec)
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
    actions = []
    for _ in range(horizon):
        t = int(info["t"][0])
        action = np.asarray(policy(obs, info))
        actions.append(action.reshape(K, -1) if K > 1 else action.reshape(1, -1))
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
    max_lots = round(env.env_config["max_position"] / market.lot_size)
    acts = np.stack(actions)  # [steps, K, action values]
    max_notional = float(env.env_config["max_position"] * mid_px[start])
    results = [BacktestResult(name if K == 1 else f"{name}/agent_{k}", eq[:, k], pos[:, k], market.lot_size, max_lots,
                              float(maker_fees[k]), float(taker_fees[k]), int(count["maker"][k]),
                              int(count["taker"][k]), float(maker_notional[k]), float(taker_notional[k]),
                              int(count["quoted"][k]), int(count["rejected"][k]), int(count["trades"][k]),
                              acts[:, k], max_notional, dict(env.env_config))
               for k in range(K)]
    return results[0] if K == 1 else results


def compute_metrics(res: BacktestResult, interval_s: float) -> dict:
    """PnL in quote currency and in bps (of the traded notional; of the notional the position limit
    allows), risk, execution and inventory. Sharpe is the mean over the standard deviation of the PnL
    change per step of `interval_s` seconds; `sharpe_period` scales it to the whole period (times the
    square root of its steps) and `sharpe_annualized` to a year of 365 x 24 h: both only beside
    `sharpe_interval_s` and `period_s` (issue 13: an annualized Sharpe of sub-second steps alone misleads)."""
    eq = res.equity
    steps = np.diff(eq)
    std = steps.std()
    sharpe = float(steps.mean() / std) if std > 0 else 0.0
    drawdown = eq - np.maximum.accumulate(eq)
    pnl = float(eq[-1] - eq[0])
    notional = res.notional_traded
    inventory = np.abs(res.position)
    res.metrics = {
        "pnl_quote": pnl,
        "pnl_bps_of_notional": pnl / notional * 1e4 if notional > 0 else None,
        "pnl_bps_of_max_notional": pnl / res.max_notional * 1e4 if res.max_notional > 0 else None,
        "max_notional_quote": float(res.max_notional),
        "sharpe_per_step": sharpe,
        "sharpe_period": sharpe * float(np.sqrt(len(steps))),
        "sharpe_annualized": sharpe * float(np.sqrt(SECONDS_PER_YEAR / interval_s)),
        "sharpe_interval_s": float(interval_s),
        "period_s": float(len(steps) * interval_s),
        "max_drawdown_quote": float(drawdown.min()),
        # traded notional per notional the limit allows: 2.0 = one full round trip
        "turnover": float(notional / res.max_notional) if res.max_notional > 0 else None,
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


BASELINES = ("buy_and_hold", "flat", "order_imbalance", "fixed_spread", "avellaneda_stoikov")
"""the baselines' result names (trader.backtest.baselines): market orders, then the quoters"""


@dataclass(frozen=True)
class BaselineOptions:
    """Settings of the baselines (trader.backtest.baselines)."""

    imbalance_threshold: float = 0.6  # order-imbalance rule: trade when |imbalance| exceeds this
    quote_offset_ticks: int = 0  # fixed-spread quoter: ticks from each touch (-1: one inside)
    as_gamma: float = 0.01  # Avellaneda-Stoikov: risk aversion, per tick per quote size


def backtest_with_baselines(market: Market, events: np.ndarray, policy: Policy, name: str, env_config: dict, *,
                            start: int, end: int, baselines: BaselineOptions = BaselineOptions()
                            ) -> tuple[list[BacktestResult], list[str]]:
    """The agent (policy; env_config["num_agents"] of them in one book) and every baseline
    (baseline_backtests) over rows start..end of one market. Returns the results and the notes on the
    baselines for the report."""
    agent = run_backtest(market, policy, name, start=start, end=end, **env_config)
    results, notes = baseline_backtests(market, events, env_config, start=start, end=end, baselines=baselines)
    return (agent if isinstance(agent, list) else [agent]) + results, notes


def baseline_backtests(market: Market, events: np.ndarray, env_config: dict, *, start: int, end: int,
                       baselines: BaselineOptions = BaselineOptions()) -> tuple[list[BacktestResult], list[str]]:
    """Every baseline over rows start..end, each in its own episode of the agent's env: flat, buy-and-hold
    and the order-imbalance rule in the market-order env (the agent's, or discrete for a quoting agent),
    and for a quoting agent the fixed-spread quoter and Avellaneda-Stoikov fitted on rows [0, start)
    only (events: the dataset's event array). A ValueError when the market-making fit fails."""
    from trader.backtest.baselines import (buy_and_hold_policy, flat_policy, imbalance_policy,
                                           market_making_baselines)
    from trader.sim import spec

    cfg = {**spec.defaults(), **env_config}
    quoting = cfg["actions"].startswith("quote")
    orders_cfg = dict(env_config, actions="discrete" if quoting else cfg["actions"], num_agents=1)
    cont = orders_cfg["actions"] == "continuous"
    results = [run_backtest(market, pol, base, start=start, end=end, **orders_cfg)
               for base, pol in ((BASELINES[0], buy_and_hold_policy(cont)), (BASELINES[1], flat_policy(cont)),
                                 (BASELINES[2], imbalance_policy(market, cont, baselines.imbalance_threshold)))]
    notes = []
    if quoting:
        quote_cfg = dict(env_config, actions="quote", num_agents=1)
        try:
            quoters, notes = market_making_baselines(market, events, quote_cfg, start, end,
                                                     baselines.quote_offset_ticks, baselines.as_gamma)
        except ValueError as e:
            raise ValueError(f"market-making baselines on the training rows: {e}") from None
        results += [run_backtest(market, pol, base, start=start, end=end, **quote_cfg) for base, pol in quoters]
    return results, notes


def sampling_interval_s(market: Market) -> float:
    """Seconds between two rows of the market (the median; 0.1 for a market of one row)."""
    return float(np.median(np.diff(market.ts))) / 1e9 if len(market.ts) > 1 else 0.1


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
