"""The venue's records: an Account (API key, free and locked balances per asset, its orders and trades) and
an Order (prices in ticks, quantities in lots, what it executed and still holds locked)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from trader.venue.amounts import fmt

OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass
class Account:
    api_key: str
    secret: str = field(repr=False)
    free: dict = field(default_factory=lambda: defaultdict(Decimal))
    locked: dict = field(default_factory=lambda: defaultdict(Decimal))
    orders: dict = field(default_factory=dict)  # orderId -> Order, in creation order
    by_client: dict = field(default_factory=dict)  # clientOrderId -> newest orderId with it
    trades: list = field(default_factory=list)  # myTrades entries
    update_ms: int = 0

    def balances(self) -> list[dict]:
        assets = list(dict.fromkeys([*self.free, *self.locked]))
        return [{"asset": a, "free": fmt(self.free[a]), "locked": fmt(self.locked[a])} for a in assets]


@dataclass
class Order:
    account: Account
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    tif: str
    price: int  # ticks; 0 for MARKET
    orig_qty: int  # lots
    orig_quote: Decimal  # quoteOrderQty, 0 if not used
    time_ms: int
    executed: int = 0
    cum_quote: Decimal = Decimal(0)
    status: str = "NEW"
    update_ms: int = 0
    lock: Decimal = Decimal(0)  # what the order still holds locked (quote for BUY, base for SELL)
    fills: list = field(default_factory=list)  # fills of the current request (FULL response)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def remaining(self) -> int:
        return self.orig_qty - self.executed
