"""The local exchange's REST API through the real ccxt client (sync ``ccxt.binance``)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
requests = pytest.importorskip("requests")

from trader.venue import LocalExchange
from trader.venue.auth import sign

SYMBOL = "BTC/USDT"
KEY, SECRET = "test-key-A", "test-secret-A"
KEY2, SECRET2 = "test-key-B", "test-secret-B"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}},
        KEY2: {"secret": SECRET2, "balances": {"USDT": "50"}}}


@pytest.fixture
def ex():
    with LocalExchange(keys=KEYS, speed=0) as server:
        server.advance(5.0)
        yield server


def client(ex, key=KEY, secret=SECRET, **options):
    c = ccxt.binance(ex.ccxt_config(key, secret) if key else ex.ccxt_config())
    c.options.update(options)
    return c


def dec(x) -> Decimal:
    return Decimal(str(x))


def test_load_markets_precision_from_dataset(ex):
    c = client(ex)
    markets = c.load_markets()
    assert list(markets) == [SYMBOL]  # fapi/dapi exchangeInfo answer with no symbols
    m = markets[SYMBOL]
    assert m["spot"] and m["active"] and m["id"] == "BTCUSDT" and (m["base"], m["quote"]) == ("BTC", "USDT")
    assert m["precision"]["price"] == float(ex.replay.tick) == 0.01
    assert m["precision"]["amount"] == float(ex.replay.lot) == 0.000001
    assert m["limits"]["amount"]["min"] == 0.000001
    assert m["limits"]["price"]["min"] == 0.01
    assert m["limits"]["cost"]["min"] == 5.0
    assert "BTC" in c.currencies and "USDT" in c.currencies  # from sapi capital/config/getall


def test_fetch_order_book_equals_server_book(ex):
    c = client(ex, key=None)
    c.load_markets()
    for _ in range(3):
        ob = c.fetch_order_book(SYMBOL, limit=100)
        server = ex.book(100)
        assert ob["nonce"] == server["lastUpdateId"] == ex.last_update_id
        assert ob["bids"] == [[float(p), float(q)] for p, q in server["bids"]]
        assert ob["asks"] == [[float(p), float(q)] for p, q in server["asks"]]
        assert len(ob["bids"]) == len(ob["asks"]) == 100
        assert ob["bids"][0][0] < ob["asks"][0][0]
        ex.advance(20.0)
    assert len(c.fetch_order_book(SYMBOL, limit=1000)["bids"]) > 500


def test_fetch_balance(ex):
    c = client(ex)
    bal = c.fetch_balance()
    assert bal["total"]["USDT"] == 100000 and bal["free"]["BTC"] == 1 and bal["used"]["BTC"] == 0
    other = client(ex, KEY2, SECRET2).fetch_balance()
    assert other["total"]["USDT"] == 50 and other["total"]["BTC"] == 0


def test_market_orders_move_balances_by_fills_and_fee(ex):
    c = client(ex)
    c.load_markets()
    best_ask = float(ex.book(1)["asks"][0][0])
    buy = c.create_order(SYMBOL, "market", "buy", 0.3)
    assert buy["status"] == "closed" and buy["filled"] == 0.3 and buy["clientOrderId"]
    fills = buy["info"]["fills"]
    assert fills and float(fills[0]["price"]) == best_ask
    cost = sum(dec(f["price"]) * dec(f["qty"]) for f in fills)
    fee = sum(dec(f["commission"]) for f in fills)
    assert fee == (cost * Decimal("0.001")).quantize(Decimal("1e-8"), rounding="ROUND_UP")
    assert all(f["commissionAsset"] == "USDT" for f in fills)
    bal = ex.balances(KEY)
    assert bal["BTC"] == (Decimal("1.3"), 0)
    assert bal["USDT"] == (Decimal(100000) - cost - fee, 0)

    sell = c.create_order(SYMBOL, "market", "sell", 0.1)
    sfills = sell["info"]["fills"]
    proceeds = sum(dec(f["price"]) * dec(f["qty"]) for f in sfills)
    sfee = sum(dec(f["commission"]) for f in sfills)
    assert ex.balances(KEY)["USDT"][0] == Decimal(100000) - cost - fee + proceeds - sfee
    assert ex.balances(KEY)["BTC"][0] == Decimal("1.2")

    quote = c.create_order(SYMBOL, "market", "buy", None, params={"quoteOrderQty": "1000"})
    spent = dec(quote["info"]["cummulativeQuoteQty"]) + sum(dec(f["commission"]) for f in quote["info"]["fills"])
    assert Decimal(999) < spent <= Decimal(1000)

    trades = c.fetch_my_trades(SYMBOL)
    ids = [int(f["tradeId"]) for f in fills + sfills + quote["info"]["fills"]]
    assert [int(t["id"]) for t in trades] == ids == sorted(ids)
    assert sum(t["amount"] for t in trades if t["order"] == buy["id"]) == pytest.approx(0.3)
    assert all(t["fee"]["currency"] == "USDT" and t["takerOrMaker"] == "taker" for t in trades)
    assert [t["side"] for t in trades] == ["buy"] * len(fills) + ["sell"] * len(sfills) + ["buy"] * len(quote["info"]["fills"])
    assert int(buy["id"]) < int(sell["id"]) < int(quote["id"])


def test_limit_order_rests_is_listed_fetched_and_canceled(ex):
    c = client(ex)
    c.load_markets()
    bid = Decimal(ex.book(1)["bids"][0][0])
    price = float(bid - 500)
    order = c.create_order(SYMBOL, "limit", "buy", 0.01, price, params={"clientOrderId": "rest-1"})
    assert order["status"] == "open" and order["clientOrderId"] == "rest-1" and order["filled"] == 0
    lock = (Decimal(str(price)) * Decimal("0.01") * Decimal("1.001")).quantize(Decimal("1e-8"))
    assert c.fetch_balance()["used"]["USDT"] == float(lock)
    ex.advance(5.0)
    assert [o["id"] for o in c.fetch_open_orders(SYMBOL)] == [order["id"]]
    by_id = c.fetch_order(order["id"], SYMBOL)
    by_client = c.fetch_order(None, SYMBOL, params={"origClientOrderId": "rest-1"})
    assert by_id["id"] == by_client["id"] == order["id"] and by_client["price"] == price
    canceled = c.cancel_order(order["id"], SYMBOL)
    assert canceled["status"] == "canceled"
    assert c.fetch_open_orders(SYMBOL) == []
    assert c.fetch_order(order["id"], SYMBOL)["status"] == "canceled"
    bal = c.fetch_balance()
    assert bal["used"]["USDT"] == 0 and bal["total"]["USDT"] == 100000
    with pytest.raises(ccxt.OrderNotFound):  # -2011 Unknown order sent.
        c.cancel_order(order["id"], SYMBOL)
    with pytest.raises(ccxt.OrderNotFound):  # -2013 Order does not exist.
        c.fetch_order("999999", SYMBOL)
    # cancel by client order id
    again = c.create_order(SYMBOL, "limit", "sell", 0.01, float(bid + 500), params={"clientOrderId": "rest-2"})
    assert c.cancel_order(None, SYMBOL, params={"origClientOrderId": "rest-2"})["id"] == again["id"]


def test_resting_limit_order_fills_when_book_crosses_it(ex):
    # find, on a private copy of the replay, the lowest best ask of the next 60 s
    probe = LocalExchange(speed=0)
    probe.advance_to(ex.clock.now())
    low = Decimal(probe.book(1)["asks"][0][0])
    for _ in range(60):
        probe.advance(1.0)
        low = min(low, Decimal(probe.book(1)["asks"][0][0]))
    best_ask = Decimal(ex.book(1)["asks"][0][0])
    assert low < best_ask, "the sample's ask must go down within a minute for this test"
    c = client(ex)
    c.load_markets()
    order = c.create_order(SYMBOL, "limit", "buy", 0.05, float(low))
    assert order["status"] == "open"
    for _ in range(60):
        ex.advance(1.0)
        if c.fetch_order(order["id"], SYMBOL)["status"] == "closed":
            break
    done = c.fetch_order(order["id"], SYMBOL)
    assert done["status"] == "closed" and done["filled"] == 0.05 and done["average"] == float(low)
    trades = c.fetch_my_trades(SYMBOL)
    assert trades and all(t["takerOrMaker"] == "maker" and t["price"] == float(low) for t in trades)
    cost = low * Decimal("0.05")
    fee = sum(dec(t["fee"]["cost"]) for t in trades)  # per fill (the queue model can fill it piece by piece)
    assert fee == sum((low * dec(t["amount"]) * Decimal("0.001")).quantize(Decimal("1e-8"), rounding="ROUND_UP")
                      for t in trades)
    assert ex.balances(KEY)["USDT"] == (Decimal(100000) - cost - fee, 0)
    assert ex.balances(KEY)["BTC"] == (Decimal("1.05"), 0)


def test_order_errors_map_to_ccxt_exceptions(ex):
    c = client(ex)
    c.load_markets()
    bid = float(Decimal(ex.book(1)["bids"][0][0]) - 100)
    c.create_order(SYMBOL, "limit", "buy", 0.01, bid, params={"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        c.create_order(SYMBOL, "limit", "buy", 0.01, bid, params={"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InsufficientFunds):
        c.create_order(SYMBOL, "market", "buy", 5.0)
    with pytest.raises(ccxt.InsufficientFunds):
        client(ex, KEY2, SECRET2).create_order(SYMBOL, "limit", "buy", 0.01, bid)
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):  # ccxt: -1013 is BadRequest unless LOT_SIZE/PRICE_FILTER
        c.create_order(SYMBOL, "limit", "buy", 0.00001, bid)
    with pytest.raises(ccxt.InvalidOrder, match="would immediately match"):
        c.create_order(SYMBOL, "limit", "buy", 0.01, bid + 500, params={"postOnly": True})
    assert len(ex.orders(KEY)) == 1
    stale = client(ex)
    stale.options["timeDifference"] = 120_000  # requests signed 2 minutes in the past
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        stale.fetch_balance()


def test_wrong_key_and_bad_signature(ex):
    wrong_key = ccxt.binance({**ex.ccxt_config(), "apiKey": "nobody", "secret": SECRET})
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        wrong_key.fetch_balance()
    wrong_secret = client(ex, KEY, "not-the-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        wrong_secret.fetch_balance()
    # with keys set, load_markets() calls the signed sapi/v1/capital/config/getall (fetchCurrencies):
    # a wrong secret already fails there, as on Binance
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        client(ex, KEY, "not-the-secret").load_markets()
    assert list(client(ex, KEY, "x", fetchCurrencies=False, fetchMargins=False).load_markets()) == [SYMBOL]


def test_raw_http_errors_are_binance_shaped(ex):
    r = requests.get(f"{ex.url}/api/v3/account", params={"timestamp": 1}, headers={"X-MBX-APIKEY": "nobody"})
    assert r.status_code == 401
    assert r.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    import time

    query = f"timestamp={int(time.time() * 1000)}"
    r = requests.get(f"{ex.url}/api/v3/account?{query}&signature={'0' * 64}", headers={"X-MBX-APIKEY": KEY})
    assert r.status_code == 400
    assert r.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    r = requests.get(f"{ex.url}/api/v3/account?{query}&signature={sign(SECRET, query)}", headers={"X-MBX-APIKEY": KEY})
    assert r.status_code == 200 and {b["asset"] for b in r.json()["balances"]} == {"BTC", "USDT"}
    # POST: parameters in the body, signed the same way
    body = f"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&newClientOrderId=raw-1&timestamp={int(time.time() * 1000)}"
    r = requests.post(f"{ex.url}/api/v3/order", data=f"{body}&signature={sign(SECRET, body)}",
                      headers={"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "FILLED" and r.json()["clientOrderId"] == "raw-1" and r.json()["fills"]
    assert json.loads(requests.get(f"{ex.url}/api/v3/ping").text) == {}
    assert requests.get(f"{ex.url}/api/v3/nothing").status_code == 404


def _signed_post(ex, body: str) -> requests.Response:
    import time

    body = f"{body}&timestamp={int(time.time() * 1000)}"
    return requests.post(f"{ex.url}/api/v3/order", data=f"{body}&signature={sign(SECRET, body)}",
                         headers={"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"})


@pytest.mark.parametrize("field", ["quantity=1e30", "quantity=1e400", "price=1e30", "price=-1", "quantity=nan",
                                   "quantity=123456789012345678901"])
def test_out_of_form_numbers_are_binance_400_not_500(ex, field):
    # issue 16: these reached the decimal arithmetic and answered HTTP 500, which ccxt reads as a network
    # error (the broker then resends); Binance refuses them with -1100 naming the parameter
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
             "price": "60000"}
    name, value = field.split("=")
    order[name] = value
    r = _signed_post(ex, "&".join(f"{k}={v}" for k, v in order.items()))
    assert r.status_code == 400, r.text
    assert r.json() == {"code": -1100, "msg": f"Illegal characters found in parameter '{name}'; legal range is "
                                              "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'."}
    assert ex.orders(KEY) == []


def test_numbers_in_form_but_over_the_filters_maxima(ex):
    huge_qty = _signed_post(ex, "symbol=BTCUSDT&side=BUY&type=MARKET"
                                "&quantity=99999999999999999999.99999999999999999999")
    assert (huge_qty.status_code, huge_qty.json()) == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    huge_price = _signed_post(ex, "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.001"
                                  "&price=99999999999999999999")
    assert (huge_price.status_code, huge_price.json()) == (400, {"code": -1013,
                                                                 "msg": "Filter failure: PRICE_FILTER"})
    info = client(ex, key=None).load_markets()[SYMBOL]["info"]["filters"]
    max_price = Decimal(next(f["maxPrice"] for f in info if f["filterType"] == "PRICE_FILTER"))
    sell = "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.001&price="
    over = _signed_post(ex, f"{sell}{max_price + ex.replay.tick}")
    assert over.json() == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
    at_max = _signed_post(ex, f"{sell}{max_price}")
    assert at_max.status_code == 200, at_max.text


def test_bytes_that_are_not_utf8_and_bad_integers_are_400(ex):
    r = requests.post(f"{ex.url}/api/v3/order", data=b"symbol=BTCUSDT&side=\xff\xfe&timestamp=1",
                      headers={"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["code"] == -1100 and "not UTF-8" in r.json()["msg"]
    r = requests.get(f"{ex.url}/api/v3/depth?symbol=%ff%fe")
    assert r.status_code == 400 and r.json()["code"] == -1100
    for query, name in [("depth?symbol=BTCUSDT&limit=1e400", "limit"), ("trades?symbol=BTCUSDT&limit=-5", "limit"),
                        ("aggTrades?symbol=BTCUSDT&fromId=x", "fromId"), ("exchangeInfo?symbols=5", "symbols")]:
        r = requests.get(f"{ex.url}/api/v3/{query}")
        assert r.status_code == 400 and r.json()["code"] == -1100 and f"'{name}'" in r.json()["msg"], (query, r.text)


def test_ccxt_gets_a_refusal_not_a_network_error_for_absurd_amounts(ex):
    # (ccxt itself cannot format 1e30 lots of 1e-6 and raises before sending: 1e20 is the largest it sends)
    c = client(ex)
    c.load_markets()
    for amount, price, error, code in [(1e20, 60000.0, ccxt.BadRequest, "-1100"),
                                       (0.01, 1e20, ccxt.BadRequest, "-1100"),
                                       (0.01, 1e15, ccxt.InvalidOrder, "PRICE_FILTER")]:
        with pytest.raises(error) as info:
            c.create_order(SYMBOL, "limit", "sell", amount, price)
        assert not isinstance(info.value, ccxt.NetworkError) and code in str(info.value)
    assert ex.orders(KEY) == []
