"""A quoting process killed with SIGKILL in the middle of a replace (the old post-only quote cancelled,
the new one stored as pending; or the new one accepted by the exchange, its answer not yet stored),
then ``trader live --real`` started again on the same ledger: the reconciliation resolves the new
quote by its client id (never sent twice, never lost, cancelled if it rests), and the ledger equals
the exchange. Spot (ccxt binance) and USD-M futures (ccxt binanceusdm), both against the local
exchange over the real recordings; and a USD-M session killed after its market order filled, whose
restart recovers the position.

The quoting process is a short program driving the real broker (``requote``: cancel + new at a new
price, ``trader.live.quoting``), so that the second order is a replace whatever the market does; the hook
``TRADER_LIVE_TEST_HOOK=<point>:60:2`` holds it at the second order (``trader.live.broker``). A quote
agent killed mid-replace through ``trader live`` itself: tests/test_live_quote_agent.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from conftest import PACKAGE_ROOT, kill_at_hook  # noqa: E402
from trader.live.audit import audit  # noqa: E402
from trader.live.ledger import Ledger  # noqa: E402
from trader.venue import LocalExchange  # noqa: E402

KEY, SECRET = "replace-crash-key-5e6f70", "replace-crash-secret-8a9b0c1d"
BALANCES = {"spot": {"USDT": "100000", "BTC": "1"}, "usdm": {"USDT": "10000"}}
SYMBOLS = {"spot": "BTC/USDT", "usdm": "BTC/USDT:USDT"}

QUOTER = """
import asyncio, sys
from decimal import Decimal
from trader.live.broker import CcxtBroker
from trader.live.exchange_client import make_client
from trader.live.futures import FuturesBroker
from trader.live.keys import ApiKeys
from trader.live.ledger import Ledger
from trader.live.quoting import requote
from trader.live.reconcile import reconcile

async def main(url, db, market, symbol, key, secret):
    client = make_client(market=market, base_url=url, keys=ApiKeys(key, secret), recv_window_ms=1000)
    try:
        await client.load_markets()
        st = Ledger(db)
        if market == "usdm":
            broker = FuturesBroker(st, client, symbol, leverage=2, recv_window_ms=1000)
        else:
            broker = CcxtBroker(st, client, symbol, recv_window_ms=1000)
        await reconcile(broker, st)
        if market == "usdm":
            await broker.configure()
        book = await client.fetch_order_book(symbol, 5)
        step = broker.price_step
        far = (Decimal(str(book["bids"][0][0])) * Decimal("0.99") / step).to_integral_value() * step  # never fills
        for i in range(5):  # the first quote, then replaces: cancel + new, one tick lower each time
            await requote(broker, "buy", far - i * step, Decimal("0.01"))
    finally:
        await client.close()

asyncio.run(main(*sys.argv[1:]))
"""


def env(**extra):
    return {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "TRADER_API_KEY": KEY, "TRADER_API_SECRET": SECRET,
            **extra}


@pytest.fixture(params=["spot", "usdm"])
def market(request):
    return request.param


@pytest.mark.parametrize("point", ["after_pending", "after_send"])
def test_sigkill_mid_replace_then_restart_reconciles(tmp_path, market, point, request):
    data = request.getfixturevalue("usdm_data") if market == "usdm" else None
    db = tmp_path / "live.sqlite"
    err_path = tmp_path / "stderr.txt"
    keys = {KEY: {"secret": SECRET, "balances": BALANCES[market]}}
    with LocalExchange(data, keys=keys, speed=0) as ex:
        ex.advance(5.0)
        with open(err_path, "w") as err:
            proc = subprocess.Popen([sys.executable, "-c", QUOTER, ex.url, str(db), market, SYMBOLS[market], KEY,
                                     SECRET], env=env(TRADER_LIVE_TEST_HOOK=f"{point}:60:2"),
                                    stdout=subprocess.DEVNULL, stderr=err)
            marker = kill_at_hook(proc, err_path, point)
        assert proc.returncode == -signal.SIGKILL

        st = Ledger(db)
        first, second = st.orders()
        assert first.status == "cancelled" and second.client_id == marker and second.status == "pending"
        on_exchange = [o for o in ex.orders(KEY) if o["clientOrderId"] == marker]
        if point == "after_pending":
            assert second.attempts == 0 and on_exchange == []
        else:
            assert second.attempts == 1 and len(on_exchange) == 1 and on_exchange[0]["status"] == "NEW"
        st.close()

        ex.resume(speed=5.0)  # the restarted session needs a moving book to warm up
        again = subprocess.run([sys.executable, "-m", "trader.live.cli", "live", "--real", "--market", market,
                                "--base-url", ex.url, "--db", str(db), "--recv-window-ms", "1000", "--leverage", "2",
                                "--checkpoint", "scripted:hold", "--duration", "1.0", "-v"],
                               env=env(), capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "reconciled: 1 order(s) resolved" in again.stdout

        st = Ledger(db)
        row = st.order(marker)
        on_exchange = [o for o in ex.orders(KEY) if o["clientOrderId"] == marker]
        if point == "after_pending":
            assert row.status == "rejected" and "never reached" in row.error and on_exchange == []
        else:  # found resting by its client id, then cancelled: the session starts without quotes
            assert row.status == "cancelled" and len(on_exchange) == 1 and on_exchange[0]["status"] == "CANCELED"
        report = audit(ex, KEY, st, SYMBOLS[market])  # each client id once; states, fills, balances equal
        assert report["orders"] == (1 if point == "after_pending" else 2) and report["position"] == 0


def test_usdm_sigkill_after_a_market_order_was_accepted_then_restart_reconciles_the_position(usdm_data, tmp_path):
    """``trader live --real --market usdm`` killed after the exchange filled its first order, before the
    answer was stored: the restart finds it by client id with its fills, and the position and wallet
    check of the reconciliation passes (the position the killed process opened is the ledger's)."""
    db = tmp_path / "live.sqlite"
    err_path = tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "trader.live.cli", "live", "--real", "--market", "usdm", "--leverage", "2",
           "--margin-mode", "isolated", "--recv-window-ms", "1000", "--db", str(db), "-v"]
    keys = {KEY: {"secret": SECRET, "balances": BALANCES["usdm"]}}
    with LocalExchange(usdm_data, keys=keys, speed=5, loop=True) as ex:
        with open(err_path, "w") as err:
            proc = subprocess.Popen([*cmd, "--base-url", ex.url, "--checkpoint", "scripted:buy", "--duration", "60"],
                                    env=env(TRADER_LIVE_TEST_HOOK="after_send:60"), stdout=subprocess.DEVNULL,
                                    stderr=err)
            marker = kill_at_hook(proc, err_path, "after_send")
        st = Ledger(db)
        assert st.order(marker).status == "pending" and st.position(SYMBOLS["usdm"]).base == 0
        assert ex.position(KEY)["positionAmt"] == "0.01000000"  # the exchange has it, the ledger not yet
        st.close()

        again = subprocess.run([*cmd, "--base-url", ex.url, "--checkpoint", "scripted:hold", "--duration", "1.0"],
                               env=env(), capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "reconciled: 1 order(s) resolved" in again.stdout

        st = Ledger(db)
        row = st.order(marker)
        assert row.status == "filled" and st.filled_of(marker) == row.amount == st.position(SYMBOLS["usdm"]).base
        report = audit(ex, KEY, st, SYMBOLS["usdm"])
        assert report["orders"] == 1 and report["position"] == Decimal("0.01")
