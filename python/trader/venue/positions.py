"""USD-M futures records and their margin arithmetic: a FuturesAccount (wallet balance in the margin
asset, one one-way position in the replayed symbol, income history), a FuturesOrder (an Order that may
be reduce-only) and the formulas of one position (entry price, unrealized PnL, margins, liquidation
price).

Money is in the margin (quote) asset, exact Decimals; quantities in lots, prices in ticks.

* Entry price: the average cost of the open position (Binance's "average entry price"); a fill that
  reduces the position realizes ``closed x (exit - entry)`` (sign of the position) and keeps the entry
  price of the rest; a fill through zero opens the remainder at its own price.
* Mark price: the replayed book's mid (the recordings carry no markPrice stream).
* One leverage bracket (``MAINT_MARGIN_RATE`` 0.4 %, maintenance amount 0, up to 125x): Binance's
  first BTCUSDT bracket ("Leverage and Margin of USDⓈ-M Futures"); larger positions are not tiered.
* Liquidation price, one-way mode, one position (Binance's "How to Calculate Liquidation Price of
  USDⓈ-M Contracts", with cum = 0): ``LP = (WB - s Q EP) / (Q MMR - s Q)``, s = +1 long / -1 short,
  Q = |position|, EP = entry price, WB = the wallet balance (cross) or the isolated margin (isolated);
  0 when the formula gives a price <= 0 (the position cannot be liquidated).
* Isolated margin: the position's initial margin at entry (entry notional / leverage); no transfers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from trader.venue.accounts import Account, Order

MAINT_MARGIN_RATE = Decimal("0.004")
MAX_LEVERAGE = 125
FUNDING_INTERVAL_MS = 8 * 3600 * 1000  # Binance USD-M BTCUSDT / ETHUSDT: 00:00, 08:00, 16:00 UTC
_ZERO = Decimal(0)


@dataclass
class Position:
    lots: int = 0  # signed: > 0 long, < 0 short
    entry_cost: Decimal = _ZERO  # quote value at entry of |lots| (entry price x |quantity|)
    leverage: int = 20
    margin_type: str = "cross"  # cross | isolated
    update_ms: int = 0

    @property
    def side(self) -> int:
        return (self.lots > 0) - (self.lots < 0)

    def apply(self, signed_lots: int, value: Decimal) -> Decimal:
        """A fill of ``signed_lots`` worth ``value`` (quote, > 0); returns the realized PnL."""
        before, after = self.lots, self.lots + signed_lots
        realized = _ZERO
        if before == 0 or (before > 0) == (signed_lots > 0):
            self.entry_cost += value
        else:
            closed = min(abs(signed_lots), abs(before))
            entry_part = self.entry_cost * closed / abs(before)
            exit_part = value * closed / abs(signed_lots)
            realized = (exit_part - entry_part) * (1 if before > 0 else -1)
            self.entry_cost -= entry_part
            if after == 0:
                self.entry_cost = _ZERO
            elif (after > 0) != (before > 0):  # through zero: the rest opens at the fill's price
                self.entry_cost = value - exit_part
        self.lots = after
        return realized

    def unrealized(self, mark_value: Decimal) -> Decimal:
        """``mark_value``: |position| valued at the mark price (quote)."""
        return (mark_value - self.entry_cost) * self.side

    def isolated_wallet(self) -> Decimal:
        return self.entry_cost / self.leverage if self.margin_type == "isolated" else _ZERO


def liquidation_price(pos: Position, qty: Decimal, entry: Decimal, wallet: Decimal) -> Decimal:
    """The price at which the position's margin falls to its maintenance margin (module docstring);
    ``qty`` = |position| in base units, ``wallet`` = WB."""
    if qty == 0:
        return _ZERO
    s = pos.side
    wb = pos.isolated_wallet() if pos.margin_type == "isolated" else wallet
    lp = (wb - s * qty * entry) / (qty * MAINT_MARGIN_RATE - s * qty)
    return lp if lp > 0 else _ZERO


def next_funding_ms(now_ms: int) -> int:
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


@dataclass
class FuturesAccount(Account):
    wallet: Decimal = _ZERO  # wallet balance of the margin asset: deposits + realized PnL - fees + funding
    position: Position = field(default_factory=Position)
    income: list = field(default_factory=list)  # GET /fapi/v1/income entries, oldest first


@dataclass
class FuturesOrder(Order):
    reduce_only: bool = False
    realized: Decimal = _ZERO  # realized PnL of the order's fills
