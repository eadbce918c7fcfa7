"""Injected faults, seen through the real ccxt client: each one with nothing lost and no duplicate order.

The client side of "no duplicate" is the protocol a live broker must follow (see ``place``): choose the
``clientOrderId`` before the first attempt; after a network error or 5xx, ask for the order by that
id before sending it again; send again only with the same id.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
requests = pytest.importorskip("requests")

from trader.venue import Faults, LocalExchange

SYMBOL = "BTC/USDT"
KEY, SECRET = "fault-key", "fault-secret"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}}}


@pytest.fixture
def ex():
    with LocalExchange(keys=KEYS, speed=0, faults=Faults(seed=7)) as server:
        server.advance(5.0)
        yield server


@pytest.fixture
def c(ex):
    client = ccxt.binance(ex.ccxt_config(KEY, SECRET))
    client.load_markets()
    return client


def place(c, client_id, *args, attempts=10):
    """Create an order at most once, whatever the transport does (the protocol a live broker needs)."""

    def backoff(exc):
        retry_after = (c.last_response_headers or {}).get("Retry-After")
        time.sleep(float(retry_after) if isinstance(exc, ccxt.DDoSProtection) and retry_after else 0.05)

    for attempt in range(attempts):
        try:
            return c.create_order(SYMBOL, *args, params={"clientOrderId": client_id}), attempt
        except ccxt.NetworkError as exc:  # outcome unknown (ExchangeNotAvailable, DDoSProtection, ...)
            backoff(exc)
        while True:  # look the order up before sending it again
            try:
                return c.fetch_order(None, SYMBOL, params={"origClientOrderId": client_id}), attempt
            except ccxt.OrderNotFound:
                break  # not accepted: send again, with the same id
            except ccxt.NetworkError as exc:
                backoff(exc)
    raise AssertionError("order not placed")


def orders_with(ex, client_id):
    return [o for o in ex.orders(KEY) if o["clientOrderId"] == client_id]


def test_latency_is_slower_but_correct(ex, c):
    t0 = time.perf_counter()
    c.fetch_order_book(SYMBOL, 20)
    fast = time.perf_counter() - t0
    ex.faults.latency_ms = 400
    t0 = time.perf_counter()
    ob = c.fetch_order_book(SYMBOL, 20)
    slow = time.perf_counter() - t0
    assert slow >= 0.4 > fast
    assert ob["nonce"] == ex.last_update_id and ob["bids"][0][0] == float(ex.book(1)["bids"][0][0])
    order, attempts = place(c, "lat-1", "market", "buy", 0.01)
    assert attempts == 0 and order["status"] == "closed" and len(orders_with(ex, "lat-1")) == 1


def test_rate_limit_429_with_retry_after(ex, c):
    ex.faults.rate_limit, ex.faults.rate_window_s = 2, 1.0
    with pytest.raises(ccxt.DDoSProtection) as info:  # binance.handle_errors: any 418/429 -> DDoSProtection
        for _ in range(5):
            c.fetch_order_book(SYMBOL, 5)
    assert not isinstance(info.value, ccxt.RateLimitExceeded) and isinstance(info.value, ccxt.NetworkError)
    assert "429" in str(info.value)
    r = requests.get(f"{ex.url}/api/v3/depth", params={"symbol": "BTCUSDT"})
    assert r.status_code == 429 and r.json()["code"] == -1003 and int(r.headers["Retry-After"]) >= 1
    assert ex.stats.rate_limited >= 2
    # keep hitting the limit while placing: retried with the same client id, placed exactly once
    order, attempts = place(c, "rl-1", "limit", "buy", 0.01, float(Decimal(ex.book(1)["bids"][0][0]) - 50))
    assert order["clientOrderId"] == "rl-1" and order["status"] == "open"
    assert len(orders_with(ex, "rl-1")) == 1


def test_ccxt_builtin_retry_resends_the_same_client_order_id(ex):
    c = ccxt.binance({**ex.ccxt_config(KEY, SECRET), "options": {"maxRetriesOnFailure": 3,
                                                                   "maxRetriesOnFailureDelay": 1100}})
    c.load_markets()
    ex.faults.rate_limit, ex.faults.rate_window_s, ex.faults.paths = 1, 1.0, frozenset({"order"})
    first = c.create_order(SYMBOL, "market", "buy", 0.01)  # uses the window's one request
    second = c.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "retry-2"})  # 429, then retried
    assert ex.stats.rate_limited >= 1
    assert second["clientOrderId"] == "retry-2" and len(orders_with(ex, "retry-2")) == 1
    assert len(ex.orders(KEY)) == 2 and first["id"] != second["id"]


def test_5xx_is_exchange_not_available_and_not_processed(ex, c):
    ex.faults.error_rate, ex.faults.paths = 1.0, frozenset({"order"})
    with pytest.raises(ccxt.ExchangeNotAvailable, match="503"):
        c.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "5xx-1"})
    assert ex.orders(KEY) == [] and ex.balances(KEY)["BTC"] == (Decimal(1), 0)
    assert c.fetch_order_book(SYMBOL, 5)["bids"]  # other endpoints unaffected
    ex.faults.error_rate = 0.5  # seeded: some attempts fail, the order is placed once
    order, attempts = place(c, "5xx-2", "market", "buy", 0.01, attempts=20)
    assert order["status"] == "closed" and len(orders_with(ex, "5xx-2")) == 1 and len(ex.orders(KEY)) == 1
    assert ex.balances(KEY)["BTC"][0] == Decimal("1.01")


def test_dropped_response_after_accept(ex, c):
    ex.faults.drop_after_accept = 1.0
    with pytest.raises(ccxt.NetworkError):
        c.create_order(SYMBOL, "market", "buy", 0.02, params={"clientOrderId": "drop-1"})
    assert ex.stats.dropped == 1
    ex.faults.drop_after_accept = 0.0
    found = c.fetch_order(None, SYMBOL, params={"origClientOrderId": "drop-1"})
    assert found["status"] == "closed" and found["filled"] == 0.02
    assert len(orders_with(ex, "drop-1")) == 1 and ex.balances(KEY)["BTC"][0] == Decimal("1.02")

    # the broker's protocol: the first attempt is dropped, the retry finds the order instead of resending
    ex.faults.drop_after_accept = 1.0
    price = float(Decimal(ex.book(1)["bids"][0][0]) - 50)
    order, attempts = place(c, "drop-2", "limit", "buy", 0.01, price)
    assert attempts == 0 and order["status"] == "open" and len(orders_with(ex, "drop-2")) == 1
    ex.faults.drop_after_accept = 0.0
    # resending an open order's client id is refused by the exchange itself
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        c.create_order(SYMBOL, "limit", "buy", 0.01, price, params={"clientOrderId": "drop-2"})
    # a dropped cancel: canceled all the same; canceling again says so
    ex.faults.drop_after_accept = 1.0
    with pytest.raises(ccxt.NetworkError):
        c.cancel_order(order["id"], SYMBOL)
    ex.faults.drop_after_accept = 0.0
    assert c.fetch_order(order["id"], SYMBOL)["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        c.cancel_order(order["id"], SYMBOL)
    assert len(ex.orders(KEY)) == 2 and ex.balances(KEY)["USDT"][1] == 0
