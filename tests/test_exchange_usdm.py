"""The local exchange's USD-M futures API (``LocalExchange(market="usdm")``) over the real USD-M BTCUSDT
recording, through raw signed requests and the real ccxt ``binanceusdm``: Binance's 400 errors for
bad values (never an HTTP 500), positions with entry price, PnL and liquidation price, funding at the
recording's 00:00 UTC funding time, the futures diff stream chaining by ``pu``, and the fault
injection on the new paths."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
requests = pytest.importorskip("requests")

from trader.venue import Faults, LocalExchange  # noqa: E402
from trader.venue.auth import sign  # noqa: E402
from trader.venue.positions import MAINT_MARGIN_RATE  # noqa: E402

KEY, SECRET = "fapi-test-key-010203", "fapi-test-secret-0a0b0c0d"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "10000"}}}
FUNDING_MS = 1721347200000  # 2024-07-19 00:00:00 UTC


@pytest.fixture
def ex(usdm_data):
    with LocalExchange(usdm_data, keys=KEYS, speed=0, faults=Faults(seed=1)) as ex:
        ex.advance(5.0)
        yield ex


def signed(ex, method: str, path: str, body: str = "", key: str = KEY) -> requests.Response:
    body = f"{body}&timestamp={int(time.time() * 1000)}".lstrip("&")
    return requests.request(method, f"{ex.url}{path}", data=f"{body}&signature={sign(SECRET, body)}",
                            headers={"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"})


def client(ex):
    c = ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET, **ex.ccxt_config(), "options": {"fetchCurrencies": False}})
    c.load_markets()
    return c


LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
         "price": "60000"}


@pytest.mark.parametrize("field", ["quantity=1e30", "quantity=1e400", "price=1e30", "price=-1"])
def test_out_of_form_numbers_are_binance_400_not_500(ex, field):
    name, value = field.split("=")
    r = signed(ex, "POST", "/fapi/v1/order", "&".join(f"{k}={v}" for k, v in {**LIMIT, name: value}.items()))
    assert r.status_code == 400 and r.json()["code"] == -1100 and f"'{name}'" in r.json()["msg"], r.text
    assert ex.orders(KEY) == []


def test_body_not_utf8_is_400(ex):
    r = requests.post(f"{ex.url}/fapi/v1/order", data=b"symbol=BTCUSDT&side=\xff\xfe&timestamp=1",
                      headers={"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["code"] == -1100 and "not UTF-8" in r.json()["msg"]


@pytest.mark.parametrize("change, code", [
    ({"positionSide": "LONG"}, -4061), ({"reduceOnly": "maybe"}, -1130), ({"reduceOnly": "true"}, -2022),
    ({"newClientOrderId": "bad id!"}, -4015), ({"timeInForce": "GTD"}, -1115), ({"type": "STOP"}, -1116),
    ({"quantity": "0.00001"}, -1013), ({"quantity": "0.001", "price": "1000"}, -4164),
    ({"quantity": "100"}, -2019), ({"price": "70000", "timeInForce": "GTX"}, -5022),
])
def test_bad_order_values_get_binance_codes(ex, change, code):
    r = signed(ex, "POST", "/fapi/v1/order", "&".join(f"{k}={v}" for k, v in {**LIMIT, **change}.items()))
    assert r.status_code == 400 and r.json()["code"] == code, r.text
    assert ex.orders(KEY) == []


def test_settings_codes_and_duplicate_client_id(ex):
    assert signed(ex, "POST", "/fapi/v1/leverage", "symbol=BTCUSDT&leverage=126").json()["code"] == -4028
    assert signed(ex, "POST", "/fapi/v1/marginType", "symbol=BTCUSDT&marginType=CROSSED").json()["code"] == -4046
    body = "&".join(f"{k}={v}" for k, v in {**LIMIT, "newClientOrderId": "q-1"}.items())
    assert signed(ex, "POST", "/fapi/v1/order", body).status_code == 200
    assert signed(ex, "POST", "/fapi/v1/order", body).json()["code"] == -4116  # open with that id
    r = signed(ex, "POST", "/fapi/v1/marginType", "symbol=BTCUSDT&marginType=ISOLATED")
    assert r.json()["code"] == -4047  # an open order: the margin type is kept
    assert requests.post(f"{ex.url}/fapi/v1/listenKey").json()["code"] == -2014  # no API key


def test_position_entry_pnl_liquidation_and_funding(ex):
    c = client(ex)
    c.set_leverage(10, "BTC/USDT:USDT")
    c.create_order("BTC/USDT:USDT", "market", "buy", 0.3)
    c.create_order("BTC/USDT:USDT", "market", "buy", 0.1)
    trades = c.fetch_my_trades("BTC/USDT:USDT")
    qty = sum(Decimal(t["info"]["qty"]) for t in trades)
    cost = sum(Decimal(t["info"]["qty"]) * Decimal(t["info"]["price"]) for t in trades)
    fees = sum(Decimal(t["info"]["commission"]) for t in trades)
    risk = ex.position(KEY)
    entry, mark = cost / qty, ex.call(ex.engine.mark)
    assert Decimal(risk["positionAmt"]) == qty == Decimal("0.4") and Decimal(risk["entryPrice"]) == entry
    assert Decimal(risk["unRealizedProfit"]) == qty * mark - cost
    wallet = Decimal("10000") - fees
    liq = (qty * entry - wallet) / (qty * (1 - MAINT_MARGIN_RATE))  # cross, long, the whole wallet behind it
    assert (Decimal(risk["liquidationPrice"]) == liq if liq > 0 else risk["liquidationPrice"] == "0.00000000")
    (pos,) = c.fetch_positions(["BTC/USDT:USDT"])
    assert (pos["side"], pos["contracts"], pos["leverage"], pos["marginMode"]) == ("long", 0.4, 10, "cross")
    ex.advance(max(0.0, (FUNDING_MS - ex.exchange_ms()) / 1000) + 1.0)
    (income,) = c.fetch_funding_history("BTC/USDT:USDT")
    mark_then = Decimal(ex.call(lambda: ex.engine.funding_history[0]["markPrice"]))
    assert income["timestamp"] == FUNDING_MS and Decimal(income["info"]["income"]) == -qty * mark_then * Decimal(
        "0.0001")  # the configured rate, paid by the long
    assert Decimal(c.fetch_balance()["info"]["totalWalletBalance"]) == wallet + Decimal(income["info"]["income"])
    assert c.fetch_funding_rate("BTC/USDT:USDT")["fundingRate"] == 0.0001


def test_fault_injection_on_fapi_order(ex):
    ex.faults.rate_limit, ex.faults.rate_window_s = 1, 60.0
    signed(ex, "GET", "/fapi/v3/account")
    r = signed(ex, "POST", "/fapi/v1/order", "&".join(f"{k}={v}" for k, v in LIMIT.items()))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and r.json()["code"] == -1003
    ex.faults.rate_limit = 0
    ex.faults.error_rate = 1.0
    assert signed(ex, "GET", "/fapi/v3/positionRisk").status_code == 503
    ex.faults.error_rate, ex.faults.drop_after_accept = 0.0, 1.0
    with pytest.raises(requests.ConnectionError):
        signed(ex, "POST", "/fapi/v1/order", "&".join(f"{k}={v}" for k, v in LIMIT.items()))
    assert [o["status"] for o in ex.orders(KEY)] == ["NEW"]  # accepted, its answer lost
    assert (ex.stats.rate_limited, ex.stats.errors, ex.stats.dropped) == (1, 1, 1)


def test_futures_diff_stream_chains_by_pu_and_gaps_are_injected(usdm_data):
    import asyncio

    import aiohttp

    async def read(ex, n):
        async with aiohttp.ClientSession() as s, s.ws_connect(
                f"ws://127.0.0.1:{ex.port}/fstream/stream?streams=btcusdt@depth@100ms") as ws:
            out = []
            while len(out) < n:
                msg = await asyncio.wait_for(ws.receive(), 10)
                out.append(json.loads(msg.data)["data"])
            return out

    with LocalExchange(usdm_data, speed=20, faults=Faults(sequence_gap_every=50)) as ex:
        diffs = asyncio.run(read(ex, 120))
    assert all("pu" in d and "T" in d for d in diffs)
    breaks = [i for i in range(1, len(diffs)) if diffs[i]["pu"] != diffs[i - 1]["u"]]
    assert len(breaks) == 2 and ex.stats.sequence_gaps >= 2  # every 50th diff left out, nothing else
