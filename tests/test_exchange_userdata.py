"""The local exchange's spot user-data stream (WebSocket API) through the real ``ccxt.pro.binance``."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
ccxtpro = pytest.importorskip("ccxt.pro")

from trader.venue import LocalExchange

SYMBOL = "BTC/USDT"
KEY, SECRET = "ud-key", "ud-secret"
OTHER, OTHER_SECRET = "ud-other", "ud-other-secret"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}},
        OTHER: {"secret": OTHER_SECRET, "balances": {"USDT": "100000"}}}


def test_orders_trades_and_balances_arrive_on_the_user_data_stream():
    async def main():
        with LocalExchange(keys=KEYS, speed=0) as ex:
            ex.advance(5.0)
            c = ccxtpro.binance(ex.ccxt_config(KEY, SECRET))
            other = ccxtpro.binance(ex.ccxt_config(OTHER, OTHER_SECRET))
            try:
                await c.load_markets()
                watch = asyncio.ensure_future(c.watch_orders(SYMBOL))
                others = asyncio.ensure_future(other.watch_orders(SYMBOL))
                for _ in range(300):  # both subscriptions in place
                    if ex.call(lambda: sum(len(s) for s in ex.userdata.subs.values())) == 2:
                        break
                    await asyncio.sleep(0.01)
                bid = float(Decimal(ex.book(1)["bids"][0][0]) - 50)
                rest = await c.create_order(SYMBOL, "limit", "buy", 0.01, bid, params={"clientOrderId": "ud-rest-1"})
                first = await asyncio.wait_for(watch, 5)
                assert [(o["clientOrderId"], o["status"], o["id"]) for o in first] == [
                    ("ud-rest-1", "open", rest["id"])]
                await c.cancel_order(rest["id"], SYMBOL)
                canceled = await asyncio.wait_for(c.watch_orders(SYMBOL), 5)
                assert canceled[-1]["id"] == rest["id"] and canceled[-1]["status"] == "canceled"
                assert canceled[-1]["clientOrderId"] == "ud-rest-1"

                trades_watch = asyncio.ensure_future(c.watch_my_trades(SYMBOL))
                balance_watch = asyncio.ensure_future(c.watch_balance())
                await asyncio.sleep(0.05)
                market = await c.create_order(SYMBOL, "market", "buy", 0.5, params={"clientOrderId": "ud-mkt-1"})
                streamed = list(await asyncio.wait_for(trades_watch, 5))
                rest_trades = await c.fetch_my_trades(SYMBOL)
                while len(streamed) < len(rest_trades):
                    streamed += await asyncio.wait_for(c.watch_my_trades(SYMBOL), 5)
                key = lambda t: (t["id"], t["order"], t["price"], t["amount"], t["fee"]["cost"])  # noqa: E731
                assert sorted(map(key, streamed)) == sorted(map(key, rest_trades))
                assert {t["order"] for t in rest_trades} == {market["id"]} and len(rest_trades) >= 1
                assert not others.done()  # the other account hears nothing of these orders
                others.cancel()
                balance = await asyncio.wait_for(balance_watch, 5)
                server = ex.balances(KEY)
                assert Decimal(str(balance["free"]["BTC"])) == server["BTC"][0]
                assert Decimal(str(balance["free"]["USDT"])) == server["USDT"][0]
            finally:
                await c.close()
                await other.close()

    asyncio.run(main())


def test_user_data_stream_drop_loses_events_that_rest_still_has():
    async def main():
        with LocalExchange(keys=KEYS, speed=0) as ex:
            ex.advance(5.0)
            c = ccxtpro.binance(ex.ccxt_config(KEY, SECRET))
            try:
                await c.load_markets()
                watch = asyncio.ensure_future(c.watch_orders(SYMBOL))
                for _ in range(300):
                    if ex.call(lambda: sum(len(s) for s in ex.userdata.subs.values())) == 1:
                        break
                    await asyncio.sleep(0.01)
                assert ex.drop_user_streams() == 1
                with pytest.raises(ccxt.NetworkError):
                    await asyncio.wait_for(watch, 5)
                bid = float(Decimal(ex.book(1)["bids"][0][0]) - 50)
                missed = await c.create_order(SYMBOL, "limit", "buy", 0.01, bid, params={"clientOrderId": "ud-missed"})
                # resubscribe (ccxt reconnects on the next watch), then the REST backfill finds the missed order
                again = asyncio.ensure_future(c.watch_orders(SYMBOL))
                for _ in range(300):
                    if ex.call(lambda: sum(len(s) for s in ex.userdata.subs.values())) == 1:
                        break
                    await asyncio.sleep(0.01)
                seen = await asyncio.wait_for(c.fetch_open_orders(SYMBOL), 5)
                assert [o["clientOrderId"] for o in seen] == ["ud-missed"] and seen[0]["id"] == missed["id"]
                await c.cancel_order(missed["id"], SYMBOL)
                after = await asyncio.wait_for(again, 5)
                assert after[-1]["id"] == missed["id"] and after[-1]["status"] == "canceled"
            finally:
                await c.close()

    asyncio.run(main())


def test_websocket_api_refuses_a_bad_signature_and_unknown_methods():
    # (ccxt 4.5.90 itself fails with a KeyError in its error path for a refused subscription, so this
    # speaks the WebSocket API directly)
    import time

    import aiohttp
    from trader.venue.auth import sign
    from trader.venue.userdata import WS_API_PATH

    async def main():
        with LocalExchange(keys=KEYS, speed=0) as ex:
            async with aiohttp.ClientSession() as session, session.ws_connect(ex.url + WS_API_PATH) as ws:
                ts = str(int(time.time() * 1000))
                payload = f"apiKey={KEY}&timestamp={ts}"
                for i, (sig, expect) in enumerate([("0" * 64, -1022), (sign(SECRET, payload), None)]):
                    await ws.send_json({"id": i, "method": "userDataStream.subscribe.signature",
                                        "params": {"apiKey": KEY, "timestamp": ts, "signature": sig}})
                    answer = await asyncio.wait_for(ws.receive_json(), 5)
                    if expect is None:
                        assert answer == {"id": i, "status": 200, "result": {"subscriptionId": 0}}
                    else:
                        assert answer["id"] == i and answer["status"] == 400 and answer["error"]["code"] == expect
                await ws.send_json({"id": 9, "method": "order.place", "params": {}})
                answer = await asyncio.wait_for(ws.receive_json(), 5)
                assert answer["status"] == 400 and "order.place" in answer["error"]["msg"]
                await ws.send_str("not json")
                answer = await asyncio.wait_for(ws.receive_json(), 5)
                assert answer["status"] == 400 and answer["error"]["code"] == -1100

    asyncio.run(main())
