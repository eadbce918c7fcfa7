"""The execution kernel of ``trader live`` (issue 16): the training env itself (``_core.LiveKernel``,
cpp/exec/live_kernel.h: one ``TradingEnv``, one agent) over the rows the live feed samples on the
exchange clock. From it come the observation (feature row, account and quote features), the orders an
action implies (market lots; bid and ask quotes: price, size, kept or cancelled) and, for the paper
broker, the fills: the env's queue model run on the live book.

    kernel.add(row)            # each LiveRow: its feature row and the market events since the previous
    kernel.start() / kernel.step(previous action)   -> kernel.obs
    plan = kernel.plan(action) # the orders the next step() sends, for the broker now

Units: the kernel's prices are ticks and sizes lots of the live market (``tick``, ``lot``); ``price()``
and ``amount()`` give the exchange's decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from trader import _core
from trader.live.feed import LiveRow
from trader.live.observation import RowFeatures
from trader.live.policy import NOT_FROM_POLICY
from trader.sim import spec


@dataclass(frozen=True)
class Quote:
    """One side of a plan: the quote after the action."""

    price: int  # ticks; 0: no quote
    lots: int
    seq: int  # the kernel's id of the order (-1: none)
    kept: bool  # the order resting before keeps its place (same price)
    cancel: int  # the kernel's id of the order this action cancels (-1: none)


@dataclass(frozen=True)
class Plan:
    market_lots: int  # signed; 0: no market order
    bid: Quote
    ask: Quote
    close: bool  # the market order closes a position held max_hold_ns (issue 13), whatever the action asks


class ExecutionKernel:
    def __init__(self, env: dict, *, tick: Decimal, lot: Decimal, levels: int, features: RowFeatures):
        self.options = {k: v for k, v in env.items() if k not in NOT_FROM_POLICY}
        self.quoting = env["actions"].startswith("quote")
        self.tick, self.lot = tick, lot
        self.levels = levels
        self.features = features
        self.core: _core.LiveKernel | None = None  # made at the first row (the feature width is known then)
        self.started = False
        self.ts_ns: int | None = None  # grid time of the last row
        self.ref_price: float | None = None  # quote per base: the first row's mid

    def add(self, row: LiveRow) -> None:
        feats = self.features(row.top, row.flow)
        if self.core is None:
            self.ref_price = spec.reference_price(row.top[None], float(self.tick))
            self.core = _core.LiveKernel(self.levels, len(feats), float(self.tick), float(self.lot), **self.options)
        self.core.append(row.top, feats, row.ts_ns, row.records)
        self.ts_ns = row.ts_ns

    def advance(self, action) -> None:
        """The first row: the start; every later one: one env step with the previous row's action."""
        if not self.started:
            self.core.reset()
            self.started = True
        else:
            self.core.step(action)

    @property
    def obs(self) -> np.ndarray:
        return self.core.obs

    def plan(self, action) -> Plan:
        p = self.core.plan(action)
        return Plan(int(p["market_lots"]), Quote(**p["bid"]), Quote(**p["ask"]), bool(p["close"]))

    def outputs(self) -> dict:
        return self.core.outputs()

    @property
    def max_lots(self) -> int:
        """The position limit in lots: max_position, or max_position_notional at the first row's mid -- the
        env's rule for a dataset (trader.sim.spec.size_lots; issue 13), the session being the dataset.
        A restarted session converts at its own first mid."""
        return spec.size_lots(self.options, float(self.lot), self.ref_price)[1]

    def price(self, ticks: int) -> Decimal:
        return Decimal(int(ticks)) * self.tick

    def amount(self, lots: int) -> Decimal:
        return Decimal(int(lots)) * self.lot

    def lots(self, amount: Decimal) -> int:
        return int((amount / self.lot).to_integral_value())

    def set_account(self, position: Decimal, cash: float, cost: float) -> None:
        """Real trading: the account from the exchange's fills (the observation is written again)."""
        self.core.set_account(self.lots(position), cash, cost)
