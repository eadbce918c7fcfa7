"""The paper broker: the execution kernel's orders and fills (``trader.live.kernel``), recorded in the
ledger as a real broker records the exchange's, so that a session, its status line and its PnL do not
depend on which broker runs. Nothing is sent anywhere."""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal

from trader.live.broker import Broker, BrokerError, OrderRequest
from trader.live.ledger import LIVE, Fill, Ledger, OrderRow


class PaperBroker(Broker):
    """The execution kernel's orders and fills (``trader.live.kernel``): nothing is sent; the env that
    the policy trained in executes every order on the live book -- market orders walk the row's levels
    (taker fee), post-only quotes rest with the env's queue position and fill by its queue model (maker
    fee), a quote that would cross is rejected -- and the broker records it all in the ledger like a
    real broker: an order row per kernel order, a fill row per kernel fill (one per level walked)."""

    kind = "paper"

    def __init__(self, ledger: Ledger, market: dict, kernel):
        super().__init__(ledger, market)
        self.kernel = kernel
        self._ids: dict[int, str] = {}  # kernel order id -> client id, every quote sent
        self._quotes: dict[int, str] = {}  # the same for the quotes not final yet
        self._markets: deque[list] = deque()  # [client id, lots not done] of market orders, oldest first
        self._fills = 0

    def place(self, plan) -> list[OrderRow]:
        """Record the orders of a kernel plan (the kernel itself executes them in its next step)."""
        k, rows = self.kernel, []
        if plan.market_lots:
            rows.append(self._new("buy" if plan.market_lots > 0 else "sell", "market", abs(plan.market_lots), None,
                                  "max hold" if plan.close else "policy"))
            self._markets.append([rows[-1].client_id, abs(plan.market_lots)])
        for side, q in (("buy", plan.bid), ("sell", plan.ask)):
            if q.cancel in self._quotes:
                self.ledger.update_order(self._quotes[q.cancel], status="cancelled")
            if q.price and not q.kept:
                rows.append(self._new(side, "limit", q.lots, k.price(q.price), "quote"))
                self._ids[q.seq] = self._quotes[q.seq] = rows[-1].client_id
        return rows

    def _new(self, side: str, otype: str, lots: int, price, reason: str) -> OrderRow:
        row = self.ledger.new_order(self.symbol, side, otype, self.kernel.amount(lots), price,
                                    {"postOnly": True} if otype == "limit" else {}, reason)
        return self.ledger.update_order(row.client_id, status="open", exchange_id=f"paper-{row.seq}")

    def book(self) -> int:
        """Record the fills of the kernel's last step (or market order) and the orders that ended."""
        k = self.kernel
        for order, buy, _maker, price, lots, fee in k.core.fills():
            cid = self._ids[order] if order >= 0 else self._markets[0][0]
            self._fills += 1
            self.ledger.add_fill(Fill(f"paper-{self._fills}", cid, None, self.symbol, "buy" if buy else "sell",
                                      k.price(price), k.amount(lots), Decimal(repr(fee)), self.quote), self.base,
                                 self.quote)
            if order < 0:
                self._markets[0][1] -= lots
                if self._markets[0][1] == 0:
                    self._finish(self._markets.popleft()[0], "filled")
        unfilled = int(k.outputs()["unfilled"])  # market-order lots the book did not show: cancelled
        while unfilled > 0 and self._markets:
            head = self._markets[0]
            unfilled -= head[1]
            self._finish(self._markets.popleft()[0], "cancelled")
        for seq, cid in list(self._quotes.items()):
            if k.core.leaves(seq) >= 0:
                continue
            del self._quotes[seq]
            row = self.ledger.order(cid)
            if row.status == "open":  # not cancelled by a plan: filled, or refused as it would cross
                filled = self.ledger.filled_of(cid)
                self._finish(cid, "filled" if filled == row.amount else "rejected",
                             None if filled else "post-only: the quote would have crossed the book")
            else:
                self._finish(cid, row.status)
        return len(k.core.fills())

    def _finish(self, cid: str, status: str, error: str | None = None) -> None:
        fills = self.ledger.fills(cid)
        filled = sum((f.amount for f in fills), Decimal(0))
        average = sum((f.amount * f.price for f in fills), Decimal(0)) / filled if filled else None
        self.ledger.update_order(cid, status=status, filled=filled, average=average, error=error,
                                 exchange_status=status.upper())

    async def submit(self, req: OrderRequest) -> OrderRow:
        """A market order now (the kill switch's flatten, the flatten at exit), by the kernel's execute()."""
        if req.price is not None:
            raise BrokerError("the paper broker executes through the env: market orders and the policy's quotes only")
        t0 = time.perf_counter()
        lots = self.kernel.lots(req.amount)
        row = self._new(req.side, "market", lots, None, req.reason)
        self._markets.appendleft([row.client_id, lots])
        self.kernel.core.market(lots if req.side == "buy" else -lots)
        self.book()
        if self._markets and self._markets[0][0] == row.client_id:  # what the book did not show
            self._finish(self._markets.popleft()[0], "cancelled")
        self.last_latency_ms = (time.perf_counter() - t0) * 1e3
        self.last_order = row = self.ledger.order(row.client_id)
        return row

    async def cancel_all(self, reason: str) -> int:
        """The resting paper quotes are cancelled in the ledger (the kernel drops them at its next step,
        when the session sends its idle action or stops; market orders already sent still execute)."""
        for cid in self._quotes.values():
            self._finish(cid, "cancelled", reason)
        n = len(self._quotes)
        self._quotes.clear()
        return n

    def end(self, reason: str) -> None:
        """The session stops: market orders the kernel has not executed yet never will."""
        while self._markets:
            self._finish(self._markets.popleft()[0], "cancelled", reason)

    async def start(self) -> None:
        # a paper order is sent nowhere: one left pending by a crash never happened
        for row in self.ledger.orders(LIVE):
            filled = self.ledger.filled_of(row.client_id)
            self.ledger.update_order(row.client_id, status="filled" if filled and filled == row.amount else
                                    ("cancelled" if filled else "rejected"), filled=filled,
                                    error="paper order interrupted by a restart")
