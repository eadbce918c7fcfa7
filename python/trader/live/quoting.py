"""Quoting with post-only limit orders through a :class:`~trader.live.broker.CcxtBroker` (issue 16):
keeping one quote per side (:func:`requote`) and taking fills from the user-data stream with a REST
backfill after every stream error (:func:`follow_fills`). Every order goes through the broker's
protocol (client ids, pending stored before sending, unknown outcomes resolved by client id)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from trader.live.broker import CcxtBroker, OrderRequest
from trader.live.ledger import LIVE, UNRESOLVED, OrderRow

log = logging.getLogger("trader.live")


async def requote(broker: CcxtBroker, side: str, price: Decimal | None, amount: Decimal) -> OrderRow | None:
    """Keep one post-only order on ``side`` at ``price`` (None: none), the env's re-quoting rule
    (cpp/env/trading_env.h, step 1): an open quote at the same price is kept (its queue place with it),
    any other quote of the side is cancelled, then a new one is sent. Nothing is sent while an order's
    outcome is unknown. Returns the side's open or new quote row, or None."""
    ledger = broker.ledger
    if any(r.status in UNRESOLVED for r in ledger.orders(LIVE)):
        return None
    kept = None
    for row in ledger.orders(("open",)):
        if row.side != side or not row.params.get("postOnly"):
            continue
        if kept is None and price is not None and row.price == price:
            kept = row
        else:
            await broker.cancel(row)
    if kept is not None or price is None:
        return kept
    return await broker.submit(OrderRequest(side, amount, "quote", price, post_only=True))


async def follow_fills(broker: CcxtBroker, stop: asyncio.Event) -> None:
    """Take fills from the user-data stream (ccxt ``watch_my_trades``: spot ``executionReport``) until
    ``stop`` is set; after every stream error (a drop, a reconnect) the REST backfill
    (``broker.sync``) reads what the stream missed, and once more at the end. Fills are keyed by trade
    id: one seen both ways counts once."""
    import ccxt

    client, ledger = broker.client, broker.ledger
    while not stop.is_set():
        watch = asyncio.ensure_future(client.watch_my_trades(broker.symbol))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({watch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not watch.done():
            watch.cancel()
            break
        try:
            trades = watch.result()
        except ccxt.NetworkError as exc:
            broker.stream_drops += 1
            log.warning("user-data stream: %s; backfilling over REST", type(exc).__name__)
            await broker.sync()
            continue
        for t in trades:
            row = ledger.by_exchange_id(str(t.get("order")))
            if row is not None:
                broker._add_trade(row.client_id, row.exchange_id, row.side, t)
    await broker.sync()
