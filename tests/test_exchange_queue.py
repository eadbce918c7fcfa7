"""The local exchange's resting orders keep a queue position by the training env's queue model
(issue 16): a post-only bid at the best bid of the replayed sample, followed message by message beside
the rules of ``trader.sim.reference_queue`` (the readable spec the C++ env equals): its place in the
queue after every level change at its price, and every fill by a trade at its price (the queue ahead
is consumed first), are the spec's."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("aiohttp")

from trader.sim import reference_queue
from trader.venue import LocalExchange
from trader.venue.replay import ReplaySink

KEY = "queue-key"
KEYS = {KEY: {"secret": "queue-secret", "balances": {"USDT": "10000000", "BTC": "10"}}}


class Spec(ReplaySink):
    """The engine behind it, and the spec's own queue place of one order beside it."""

    def __init__(self, engine, oid: int, side_bid: bool, price: int, front: float, model: str):
        self.engine, self.oid, self.bid, self.price, self.model = engine, oid, side_bid, price, model
        self.spot = reference_queue.LimitOrder(0, 0, side_bid, price, 0, 0)
        self.spot.front, self.spot.cum_trade = front, 0.0
        self.checked_depth = self.checked_trades = self.at_price_fills = 0
        self.fronts = [front]

    def open(self):
        return self.engine.open.get(self.oid)

    def on_snapshot(self):
        self.engine.on_snapshot()

    def on_depth(self, msg, changed):
        order = self.open()
        self.engine.on_depth(msg, changed)
        if order is None or self.open() is None:  # filled (a touch cross) or never resting: nothing to follow
            return
        for is_bid, price, prev in changed:
            if is_bid == self.bid and price == self.price:
                new = self.engine.book.qty_at(is_bid, price)
                reference_queue.on_depth(self.spot, float(prev), float(new), self.model, 2.0)
                assert self.engine.queue[self.oid].front == self.spot.front
                self.fronts.append(self.spot.front)
                self.checked_depth += 1

    def on_trade(self, msg, price, qty):
        order = self.open()
        before = order.executed if order else 0
        at_price = order is not None and price == self.price and bool(msg.get("m")) == self.bid
        if at_price:
            self.spot.leaves = order.remaining
            want = reference_queue.on_trade_at_price(self.spot, qty, qty)
        self.engine.on_trade(msg, price, qty)
        if at_price:
            assert order.executed - before == want, (self.spot.front, qty)
            if order.status != "FILLED":
                assert self.engine.queue[self.oid].front == self.spot.front
            self.fronts.append(self.spot.front)
            self.checked_trades += 1
            self.at_price_fills += want > 0

    def on_book_ticker(self, msg):
        self.engine.on_book_ticker(msg)


@pytest.mark.parametrize("model", ["power", "risk_averse"])
def test_a_resting_bid_follows_the_env_queue_model(model):
    ex = LocalExchange(keys=KEYS, speed=0)
    ex.advance(5.0)
    eng = ex.engine
    eng.queue_model = model
    price = int(eng.book.top(1)[0, 0])
    front = float(eng.book.qty_at(True, price))
    lots = 2_000_000  # 2 BTC (lot 1e-6): larger than most trades, so that it fills piece by piece
    resp = eng.place(eng.accounts[KEY], {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER",
                                         "price": str(eng.replay.price.str(price)),
                                         "quantity": str(Decimal(lots) * eng.replay.lot)})
    oid = resp["orderId"]
    assert resp["status"] == "NEW" and eng.queue[oid].front == front > 0  # the back of its level
    spec = Spec(eng, oid, True, price, front, model)
    ex.replay.sink = spec
    for _ in range(1200):  # up to 2 minutes of the sample, 0.1 s at a time
        ex.advance(0.1)
        if oid not in eng.open:
            break
    assert spec.checked_trades > 0 and spec.checked_depth > 0
    order = eng.accounts[KEY].orders[oid]
    if model == "power":  # (risk_averse: only trades move it; in these 2 minutes the touch crosses it first)
        assert spec.at_price_fills > 0  # trades at its price filled it once the queue ahead was gone
        first_fill = next(i for i, f in enumerate(spec.fronts) if f <= -0.5)
        assert all(f > -0.5 for f in spec.fronts[:first_fill]) and spec.fronts[0] > 0
    assert order.executed > 0 and eng.accounts[KEY].trades and all(t["isMaker"] and t["price"] == eng.replay.price.str(price)
                                            for t in eng.accounts[KEY].trades)
