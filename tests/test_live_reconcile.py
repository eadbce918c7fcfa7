"""The start-up reconciliation (trader.live.reconcile) while the exchange keeps trading: a quote resting
when it starts and filled while it runs is counted, so the balances agree with the ledger. Before, the
fills were read before the open orders were cancelled, and a fill in between made the restart refuse
("balances do not match the ledger"; seen in tests/test_live_quote_agent.py's SIGKILL case on a loaded
machine). Spot (ccxt binance) against the local exchange over the bundled recording."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from trader.live.audit import audit  # noqa: E402
from trader.live.broker import CcxtBroker  # noqa: E402
from trader.live.exchange_client import make_client  # noqa: E402
from trader.live.keys import ApiKeys  # noqa: E402
from trader.live.ledger import Ledger  # noqa: E402
from trader.live.quoting import requote  # noqa: E402
from trader.live.reconcile import reconcile  # noqa: E402
from trader.venue import LocalExchange  # noqa: E402

KEY, SECRET = "reconcile-race-key-1a2b3c", "reconcile-race-secret-4d5e6f7a"
SYMBOL = "BTC/USDT"


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_a_quote_that_fills_while_the_reconciliation_runs_is_counted(tmp_path, side):
    keys = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}}}
    with LocalExchange(None, keys=keys, speed=0) as ex:
        ex.advance(5.0)

        async def session():
            client = make_client(market="spot", base_url=ex.url, keys=ApiKeys(KEY, SECRET), recv_window_ms=1000)
            try:
                await client.load_markets()
                ledger = Ledger(tmp_path / "live.sqlite")
                broker = CcxtBroker(ledger, client, SYMBOL, recv_window_ms=1000)
                await reconcile(broker, ledger)  # the first start: records the baseline
                book = await client.fetch_order_book(SYMBOL, 5)
                touch = Decimal(str(book["bids" if side == "buy" else "asks"][0][0]))
                row = await requote(broker, side, touch, Decimal("0.01"))  # rests at the touch
                assert row is not None and ledger.order(row.client_id).status == "open"

                fetch_open_orders = client.fetch_open_orders
                replayed = []

                async def trades_meanwhile(*args, **kwargs):  # the market moves on while the restart runs
                    if not replayed:
                        for _ in range(120):  # up to 10 minutes of the recording, until the quote fills
                            replayed.append(ex.advance(5.0))
                            if [o["status"] for o in ex.orders(KEY)] == ["FILLED"]:
                                break
                    return await fetch_open_orders(*args, **kwargs)

                client.fetch_open_orders = trades_meanwhile
                report = await reconcile(broker, ledger)  # refused before: the fill was not in the ledger
                client.fetch_open_orders = fetch_open_orders
                return ledger, row.client_id, report
            finally:
                await client.close()

        ledger, cid, report = asyncio.run(session())
        assert [o["status"] for o in ex.orders(KEY)] == ["FILLED"], "the recording never reached the quote"
        assert ledger.order(cid).status == "filled" and ledger.filled_of(cid) == Decimal("0.01")
        assert report.fills_recovered >= 1 and report.cancelled == 0  # one trade or several partial ones
        for asset, (exchange, expected) in report.balances.items():
            assert exchange == expected, asset
        audit(ex, KEY, ledger, SYMBOL)  # each client id once; states, fills and balances equal
