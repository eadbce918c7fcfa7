"""Post-only quotes through ``CcxtBroker.requote`` and the real ccxt client against the local exchange:
an unchanged price keeps the order, a new price cancels it and sends a new one, a crossing quote is
refused by the exchange, and with every order answer dropped no order is placed twice or lost."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from trader.live.audit import audit
from trader.live.broker import BrokerError, CcxtBroker, OrderRequest, PaperBroker
from trader.live.exchange_client import make_client
from trader.live.keys import ApiKeys
from trader.live.ledger import Ledger
from trader.venue import Faults, LocalExchange

KEY, SECRET = "quote-test-key-9f8e7d", "quote-test-secret-6c5b4a39"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}}}
AMOUNT = Decimal("0.01")


def test_quotes_keep_replace_reject_and_survive_dropped_answers(tmp_path):
    async def main(ex):
        client = make_client(base_url=ex.url, keys=ApiKeys(KEY, SECRET), recv_window_ms=1000, timeout_ms=10_000)
        try:
            await client.load_markets()
            st = Ledger(tmp_path / "quotes.sqlite")
            broker = CcxtBroker(st, client, "BTC/USDT", recv_window_ms=1000)
            tick = ex.replay.tick
            bid, ask = Decimal(ex.book(1)["bids"][0][0]), Decimal(ex.book(1)["asks"][0][0])
            first = await broker.requote("buy", bid - 5 * tick, AMOUNT)
            assert first.status == "open" and first.params == {"postOnly": True}
            kept = await broker.requote("buy", bid - 5 * tick, AMOUNT)
            assert kept.client_id == first.client_id  # unchanged price: the same order, nothing sent
            moved = await broker.requote("buy", bid - 6 * tick, AMOUNT)
            assert moved.client_id != first.client_id and moved.status == "open"
            assert st.order(first.client_id).status == "cancelled"
            sell = await broker.requote("sell", ask + 3 * tick, AMOUNT)
            assert sell.status == "open" and st.order(moved.client_id).status == "open"  # sides are separate
            crossing = await broker.requote("sell", bid, AMOUNT)  # would take: LIMIT_MAKER refused
            assert crossing.status == "rejected" and "would immediately match" in crossing.error
            assert st.order(sell.client_id).status == "cancelled"

            ex.faults.drop_after_accept = 1.0  # every accepted create / cancel loses its answer
            dropped = await broker.requote("buy", bid - 7 * tick, AMOUNT)
            assert dropped.status == "open" and dropped.attempts == 1  # found by client id, not resent
            assert st.order(moved.client_id).status == "cancelled"
            ex.faults.drop_after_accept = 0.0
            assert await broker.requote("buy", None, AMOUNT) is None  # no quote: the bid is cancelled
            assert st.order(dropped.client_id).status == "cancelled"
            await broker.requote("sell", ask + 2 * tick, AMOUNT)
            assert await broker.cancel_all("test end") == 1
            return st
        finally:
            await client.close()

    with LocalExchange(keys=KEYS, speed=0, faults=Faults(seed=3)) as ex:
        ex.advance(5.0)
        st = asyncio.run(main(ex))
        assert ex.stats.dropped >= 2
        orders = ex.orders(KEY)
        ids = [o["clientOrderId"] for o in orders]
        assert len(ids) == len(set(ids)) == 5  # each quote once on the exchange (the crossing one refused)
        assert {o["type"] for o in orders} == {"LIMIT_MAKER"} and not [o for o in orders if o["status"] == "NEW"]
        assert {r.client_id for r in st.orders(("cancelled",))} == set(ids)
        audit(ex, KEY, st)


def test_paper_broker_refuses_post_only_quotes(tmp_path):
    with LocalExchange(speed=0) as ex:
        market = ccxt.binance(ex.ccxt_config()).load_markets()["BTC/USDT"]
    broker = PaperBroker(Ledger(tmp_path / "p.sqlite"), market, feed=None)
    with pytest.raises(BrokerError, match="post-only"):
        asyncio.run(broker.submit(OrderRequest("buy", AMOUNT, price=Decimal(60000), post_only=True)))
    assert broker.ledger.orders() == []  # refused before anything was stored
