"""The local exchange's parts without ccxt: matching rules, signatures, replay loop, raw streams, CLI."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest

pytest.importorskip("aiohttp")

from trader.venue import (
    LocalExchange,
    errors,
    split_symbol,
)
from trader.venue.auth import sign, verify

KEY = "engine-key"
KEYS = {KEY: {"secret": "engine-secret", "balances": {"USDT": "1000000", "BTC": "10"}}}


@pytest.fixture(scope="module")
def base_exchange():
    return LocalExchange(keys=KEYS, speed=0)


@pytest.fixture
def ex():
    # not started: the engine is driven directly (LocalExchange.call runs inline without a loop)
    x = LocalExchange(keys=KEYS, speed=0)
    x.advance(5.0)
    return x


def place(ex, **params):
    params = {"symbol": "BTCUSDT", **{k: str(v) for k, v in params.items()}}
    return ex.engine.place(ex.engine.accounts[KEY], params)


def avg(resp) -> Decimal:
    return Decimal(resp["cummulativeQuoteQty"]) / Decimal(resp["executedQty"])


def test_split_symbol():
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert split_symbol("ethbtc") == ("ETH", "BTC")
    with pytest.raises(ValueError):
        split_symbol("XYZ")


def test_our_fills_take_liquidity_until_the_level_updates(ex):
    top = ex.book(2)["asks"]
    q0 = Decimal(top[0][1])
    first = place(ex, side="BUY", type="MARKET", quantity=q0)
    assert [f["price"] for f in first["fills"]] == [top[0][0]]
    second = place(ex, side="BUY", type="MARKET", quantity="0.001")
    assert second["fills"][0]["price"] != top[0][0]  # the best level is used up for us
    assert avg(second) > avg(first)


def test_ioc_fok_and_limit_maker(ex):
    ask_p, ask_q = ex.book(1)["asks"][0]
    big = Decimal(ask_q) + 1
    acct = ex.engine.accounts[KEY]
    before = dict(acct.free)
    fok = place(ex, side="BUY", type="LIMIT", timeInForce="FOK", quantity=big, price=ask_p)
    assert fok["status"] == "EXPIRED" and Decimal(fok["executedQty"]) == 0 and fok["fills"] == []
    assert dict(acct.free) == before and acct.locked["USDT"] == 0
    ioc = place(ex, side="BUY", type="LIMIT", timeInForce="IOC", quantity=big, price=ask_p)
    assert ioc["status"] == "EXPIRED" and ioc["executedQty"] == ask_q and acct.locked["USDT"] == 0
    with pytest.raises(errors.BinanceError, match="would immediately match"):
        place(ex, side="SELL", type="LIMIT_MAKER", quantity="0.01", price=ex.book(1)["bids"][0][0])


def test_crossing_limit_takes_then_rests_without_refilling_from_the_same_liquidity(ex):
    ask_p, ask_q = ex.book(1)["asks"][0]
    qty = Decimal(ask_q) + Decimal("0.5")
    resp = place(ex, side="BUY", type="LIMIT", timeInForce="GTC", quantity=qty, price=ask_p)
    assert resp["status"] == "PARTIALLY_FILLED" and resp["executedQty"] == ask_q
    assert all(f["price"] == ask_p for f in resp["fills"])
    order = ex.engine.open[resp["orderId"]]
    executed = order.executed
    acct = ex.engine.accounts[KEY]
    # the lock left is the remainder's price * qty * (1 + fee)
    assert acct.locked["USDT"] == order.lock
    ex.engine.on_depth({}, [(True, 1, 0)])  # an update elsewhere: the level we took is still used up
    assert order.executed == executed and order.status == "PARTIALLY_FILLED"
    ex.engine.on_depth({}, [(False, order.price, 0)])  # the data updates that level: its size is fresh
    assert order.status == "FILLED" and ex.engine.open == {}
    assert acct.locked["USDT"] == 0


def test_quote_order_qty_market_orders(ex):
    buy = place(ex, side="BUY", type="MARKET", quoteOrderQty="2500")
    spent = Decimal(buy["cummulativeQuoteQty"]) + sum(Decimal(f["commission"]) for f in buy["fills"])
    assert buy["status"] == "FILLED" and Decimal(2499) < spent <= 2500
    assert buy["origQty"] == buy["executedQty"] and buy["origQuoteOrderQty"] == "2500.00000000"
    sell = place(ex, side="SELL", type="MARKET", quoteOrderQty="2500")
    assert Decimal(2499) < Decimal(sell["cummulativeQuoteQty"]) <= 2500


def test_client_order_id_reuse_follows_binance(ex):
    bid = Decimal(ex.book(1)["bids"][0][0]) - 100
    o1 = place(ex, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=bid, newClientOrderId="same")
    with pytest.raises(errors.BinanceError, match="Duplicate order sent"):
        place(ex, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=bid, newClientOrderId="same")
    acct = ex.engine.accounts[KEY]
    ex.engine.cancel(acct, {"symbol": "BTCUSDT", "origClientOrderId": "same"})
    # unique among *open* orders only: once canceled (or filled) the id may be used again
    o2 = place(ex, side="BUY", type="MARKET", quantity="0.01", newClientOrderId="same")
    found = ex.engine.query(acct, {"symbol": "BTCUSDT", "origClientOrderId": "same"})
    assert found["orderId"] == o2["orderId"] != o1["orderId"]
    with pytest.raises(errors.BinanceError, match="LOT_SIZE"):
        place(ex, side="BUY", type="MARKET", quantity="0.0000001")
    with pytest.raises(errors.BinanceError, match="PRICE_FILTER"):
        place(ex, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="60000.001")
    with pytest.raises(errors.BinanceError, match="Invalid symbol"):
        ex.engine.place(acct, {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})


def test_signature_checks():
    class Acct:
        secret = "s3cret"

    accounts = {"k": Acct()}
    now = int(time.time() * 1000)
    q = f"symbol=BTCUSDT&timestamp={now}"
    assert verify(accounts, "k", f"{q}&signature={sign('s3cret', q)}", "", {"timestamp": str(now)}) is accounts["k"]
    # Binance signs query string + body, concatenated without a separator
    body = "side=BUY&quantity=1"
    sig = sign("s3cret", q + body)
    assert verify(accounts, "k", q, f"{body}&signature={sig}", {"timestamp": str(now)})
    cases = [
        (None, q + "&signature=x", {"timestamp": str(now)}, -2014),
        ("nobody", q + "&signature=x", {"timestamp": str(now)}, -2015),
        ("k", q, {"timestamp": str(now)}, -1102),
        ("k", f"{q}&signature={sign('wrong', q)}", {"timestamp": str(now)}, -1022),
        ("k", f"{q}&signature={sign('s3cret', q)}", {"timestamp": str(now - 10_000)}, -1021),
        ("k", f"{q}&signature={sign('s3cret', q)}", {"timestamp": str(now + 5_000)}, -1021),
        ("k", f"{q}&signature={sign('s3cret', q)}", {"timestamp": str(now), "recvWindow": "70000"}, -1131),
    ]
    for key, query, params, code in cases:
        with pytest.raises(errors.BinanceError) as info:
            verify(accounts, key, query, "", params)
        assert info.value.code == code


def test_loop_replays_again_with_increasing_ids():
    x = LocalExchange(speed=0, loop=True)
    x.advance(0)
    start_book = x.book(20)
    x.advance_to(x.replay.end_ns)
    end_id = x.replay.last_update_id
    x.advance_to(x.replay.next_time())  # the first snapshot again, one second after the data's end
    assert x.replay.passes == 2 and not x.replay.finished
    again = x.book(20)
    assert again["bids"] == start_book["bids"] and again["asks"] == start_book["asks"]
    assert again["lastUpdateId"] > end_id


def test_replay_stops_at_the_end():
    x = LocalExchange(speed=0)
    x.advance(1e6)
    assert x.finished and x.replay.next_time() is None
    assert x.replay.messages_applied == len(x.replay._start)


def test_raw_streams_combined_endpoint_and_control_messages():
    import aiohttp

    async def main():
        with LocalExchange(speed=0) as ex:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"ws://127.0.0.1:{ex.port}/stream?streams=btcusdt@depth") as ws:
                    await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1})
                    assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
                    await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 2})
                    reply = await ws.receive_json(timeout=5)
                    assert reply["id"] == 2 and reply["error"]["code"] == 2
                    await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
                    assert (await ws.receive_json(timeout=5))["result"] == ["btcusdt@depth", "btcusdt@depth@100ms"]
                    snapshot_id = ex.last_update_id
                    ex.advance(10.0)
                    fast, slow = [], []
                    while True:
                        try:
                            msg = await ws.receive_json(timeout=0.5)
                        except asyncio.TimeoutError:
                            break
                        (fast if msg["stream"].endswith("100ms") else slow).append(msg["data"])
        return snapshot_id, fast, slow

    snapshot_id, fast, slow = asyncio.run(main())
    assert len(fast) > 20 and 5 <= len(slow) <= 11
    for stream in (fast, slow):
        assert stream[0]["U"] <= snapshot_id + 1 <= stream[0]["u"] + 1
        assert all(b["U"] == a["u"] + 1 for a, b in zip(stream, stream[1:]))
        assert all(m["e"] == "depthUpdate" and m["s"] == "BTCUSDT" for m in stream)
    assert all(b["E"] // 1000 > a["E"] // 1000 for a, b in zip(slow, slow[1:]))


def test_cli_serve(tmp_path):
    from click.testing import CliRunner
    from trader.venue.cli import serve

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"cli-key-0001": {"secret": "cli-very-secret", "balances": {"USDT": "10"}}}))
    keys.chmod(0o644)
    result = CliRunner().invoke(serve, ["--keys", str(keys), "--port", "0", "--speed", "100", "--duration", "0.5",
                                        "--latency-ms", "5", "--fault-paths", "order"])
    assert result.exit_code == 0, result.output
    assert "REST http://127.0.0.1:" in result.output and "BTCUSDT" in result.output
    assert "cli-very-secret" not in result.output
    assert "readable by group or others" in result.output
    assert "stopped:" in result.output
