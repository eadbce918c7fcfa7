"""One agent and every baseline over one test period, through the one backtest engine: what
`trader backtest` reports for a run and `trader evaluate` for every fold and seed.

Baselines: flat, buy-and-hold and the order-imbalance rule trade with market orders (in the run's
market-order env, or the discrete one for a quoting run); for a quoting run also the fixed-spread
quoter and Avellaneda-Stoikov (2008), fitted on training rows only (`fit`: the market, its events
and the number of rows to fit on; default: the test market's rows before `start`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trader.backtest.baselines import buy_and_hold_policy, flat_policy, imbalance_policy, market_making_baselines
from trader.backtest.engine import BacktestResult, Policy, compute_metrics, run_backtest
from trader.sim.env import Market


@dataclass(frozen=True)
class BaselineOptions:
    imbalance_threshold: float = 0.6  # order-imbalance rule: trade when |imbalance| exceeds this
    quote_offset_ticks: int = 0  # fixed-spread quoter: ticks from each touch (-1: one inside)
    as_gamma: float = 0.01  # Avellaneda-Stoikov risk aversion, per tick per quote size

    def check(self) -> None:
        if not self.as_gamma > 0:
            raise ValueError(f"as_gamma: expected a number > 0, got {self.as_gamma}")


def step_seconds(market: Market) -> float:
    """The sampling interval of the market's rows (median), seconds."""
    return float(np.median(np.diff(market.ts))) / 1e9 if len(market.ts) > 1 else 0.1


def run_agent(market: Market, policy: Policy, name: str, env_cfg: dict, start: int, end: int,
              num_agents: int = 1) -> list[BacktestResult]:
    """The trained agent (all its agents) over rows start..end, metrics computed."""
    out = run_backtest(market, policy, name, start=start, end=end, num_agents=num_agents, **env_cfg)
    results = out if isinstance(out, list) else [out]
    for r in results:
        compute_metrics(r, step_seconds(market))
    return results


def run_baselines(market: Market, events: np.ndarray, env_cfg: dict, start: int, end: int,
                  options: BaselineOptions = BaselineOptions(),
                  fit: tuple[Market, np.ndarray, int] | None = None) -> tuple[list[BacktestResult], list[str]]:
    """Every baseline over rows start..end in the run's env (see the module docstring), metrics
    computed; and notes on what the market-making baselines fitted."""
    from trader.sim import spec

    options.check()
    actions = {**spec.defaults(), **env_cfg}["actions"]
    quoting = actions.startswith("quote")
    # a quoting run's market-order baselines trade its env with market orders, where its quote-only rule is off
    orders_cfg = dict(env_cfg, actions="discrete", quote_exit_touch=False) if quoting else dict(env_cfg, actions=actions)
    cont = orders_cfg["actions"] == "continuous"
    results = [run_backtest(market, pol, name, start=start, end=end, **orders_cfg)
               for name, pol in (("buy_and_hold", buy_and_hold_policy(cont)), ("flat", flat_policy(cont)),
                                 ("order_imbalance", imbalance_policy(market, cont, options.imbalance_threshold)))]
    notes: list[str] = []
    if quoting:
        fit_market, fit_events, fit_rows = fit if fit is not None else (market, events, start)
        quoters, notes = market_making_baselines(market, env_cfg, end, options.quote_offset_ticks, options.as_gamma,
                                                 fit_market, fit_events, fit_rows)
        results += [run_backtest(market, pol, name, start=start, end=end, **dict(env_cfg, actions="quote"))
                    for name, pol in quoters]
    for r in results:
        compute_metrics(r, step_seconds(market))
    return results, notes
