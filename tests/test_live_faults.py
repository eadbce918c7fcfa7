"""Every injected fault of the local exchange, through the real ccxt client, with nothing lost and no
duplicate order: each client order id at most once on the exchange, every exchange order and trade
in SQLite with the same state, the balances equal to the ledger's baseline plus its fills
(``trader.live.audit``). First the order protocol itself (``CcxtBroker.submit``), then whole
sessions under each fault."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from rich.console import Console
from trader.live.audit import audit
from trader.live.broker import CcxtBroker, OrderRequest
from trader.live.exchange_client import make_client
from trader.live.keys import ApiKeys
from trader.live.launch import EXIT_OK, LiveOptions, run_live
from trader.live.ledger import Ledger
from trader.venue import Faults, LocalExchange

KEY, SECRET = "fault-test-key-0a1b2c", "fault-test-secret-3d4e5f6a"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}}}


def with_broker(tmp_path, body, *, speed=20.0, recv_window_ms=1000, timeout_ms=10_000, faults=None):
    """Run ``body(ex, broker, ledger)`` against a fresh local exchange; returns (its result, ledger, ex)."""

    async def main(ex):
        client = make_client(base_url=ex.url, keys=ApiKeys(KEY, SECRET), recv_window_ms=recv_window_ms,
                             timeout_ms=timeout_ms)
        try:
            await client.load_markets()
            st = Ledger(tmp_path / "broker.sqlite")
            broker = CcxtBroker(st, client, "BTC/USDT", recv_window_ms=recv_window_ms)
            return await body(ex, broker, st), st
        finally:
            await client.close()

    with LocalExchange(keys=KEYS, speed=speed, loop=True, faults=faults or Faults(seed=11)) as ex:
        out, st = asyncio.run(main(ex))
        return out, st, ex


def sent(ex, cid):
    return [o for o in ex.orders(KEY) if o["clientOrderId"] == cid]


def test_5xx_not_processed_is_resent_with_the_same_id_once_no_attempt_can_land(tmp_path):
    async def body(ex, broker, st):
        ex.faults.error_rate, ex.faults.paths = 1.0, frozenset({"order"})

        async def heal():
            await asyncio.sleep(0.3)
            ex.faults.error_rate = 0.0

        asyncio.ensure_future(heal())
        return await broker.submit(OrderRequest("buy", Decimal("0.01")))

    row, st, ex = with_broker(tmp_path, body)
    assert row.status == "filled" and row.attempts >= 2
    assert len(sent(ex, row.client_id)) == 1
    # resent only after the first attempt could no longer be accepted (recvWindow 1 s, + 1 s margin)
    assert (row.last_sent_ns - row.created_ns) / 1e9 >= 2.0
    assert ex.stats.errors >= 2  # the create and the first lookups
    audit(ex, KEY, st)


def test_dropped_answer_is_found_by_client_id_not_resent(tmp_path):
    async def body(ex, broker, st):
        ex.faults.drop_after_accept = 1.0
        try:
            return await broker.submit(OrderRequest("sell", Decimal("0.02")))
        finally:
            ex.faults.drop_after_accept = 0.0

    row, st, ex = with_broker(tmp_path, body)
    assert ex.stats.dropped == 1
    assert row.status == "filled" and row.attempts == 1 and row.filled == Decimal("0.02")
    assert len(sent(ex, row.client_id)) == 1 and st.filled_of(row.client_id) == Decimal("0.02")
    audit(ex, KEY, st)


def test_timeout_with_the_request_still_in_flight_is_not_resent(tmp_path):
    """The create times out on the client (1 s) while the exchange, 3 s of injected latency, is still
    holding it: the request is processed 1.5 s after it was sent, after the first lookup said "not
    found". A broker that resent on that "not found" would place the order twice (a filled order's
    client id may be used again on Binance); ours asks again until recvWindow has passed since the
    attempt was signed."""

    async def body(ex, broker, st):
        ex.faults.latency_ms = 3000

        async def lookups_fast_again():
            await asyncio.sleep(0.3)
            ex.faults.latency_ms = 0  # the create in flight keeps its 3 s; later requests are fast

        task = asyncio.ensure_future(lookups_fast_again())
        row = await broker.submit(OrderRequest("buy", Decimal("0.01")))
        await task
        return row

    row, st, ex = with_broker(tmp_path, body, recv_window_ms=2500, timeout_ms=1000)
    assert row.status == "filled" and row.attempts == 1
    assert len(sent(ex, row.client_id)) == 1
    (event,) = st.events("unknown-outcome")
    assert row.client_id in event["detail"] and "RequestTimeout" in event["detail"]
    audit(ex, KEY, st)


def test_rate_limit_waits_for_retry_after(tmp_path):
    async def body(ex, broker, st):
        ex.faults.rate_limit, ex.faults.rate_window_s = 2, 1.0
        rows = []
        for side in ("buy", "sell", "buy", "sell"):
            rows.append(await broker.submit(OrderRequest(side, Decimal("0.01"))))
        return rows

    rows, st, ex = with_broker(tmp_path, body)
    assert ex.stats.rate_limited >= 1 and all(r.status == "filled" for r in rows)
    assert all(len(sent(ex, r.client_id)) == 1 for r in rows)
    audit(ex, KEY, st)


def test_partial_fills_of_a_resting_order_are_recorded_once(tmp_path):
    """A resting buy at the best bid fills piece by piece as the (hand-stepped) replay trades through
    it; polling it again and again, some answers dropped, records each trade exactly once."""

    async def body(ex, broker, st):
        ex.advance(5.0)
        bid = Decimal(ex.book(1)["bids"][0][0])
        row = st.new_order("BTC/USDT", "buy", "limit", Decimal("1.5"), bid, {"timeInForce": "GTC"}, "resting")
        row = await broker._send(row)
        partial = []
        for i in range(100):
            ex.advance(0.1)
            ex.faults.drop_after_accept = 0.5 if i % 5 == 0 else 0.0
            await broker.sync()
            await broker.sync()  # the same fills seen again
            r = st.order(row.client_id)
            if r.status == "open" and 0 < r.filled < r.amount:
                partial.append((r.filled, len(st.fills(r.client_id))))
            if r.status != "open":
                break
        ex.faults.drop_after_accept = 0.0
        await broker.cancel_all("test end")
        return st.order(row.client_id), partial

    (row, partial), st, ex = with_broker(tmp_path, body, speed=0)
    assert partial and partial[0][1] >= 2  # seen open and partly filled, in several trades
    fills = st.fills(row.client_id)
    assert row.status == "filled" and sum(f.amount for f in fills) == row.filled == Decimal("1.5")
    assert len({f.trade_id for f in fills}) == len(fills) > partial[0][1]
    audit(ex, KEY, st)


FAULTS = {
    "latency": {"latency_ms": 250, "latency_jitter_ms": 100},
    "429": {"rate_limit": 6, "rate_window_s": 1.0},
    "5xx": {"error_rate": 0.25},
    "drop-after-accept": {"drop_after_accept": 0.4, "seed": 1},  # its first draw, 0.13, drops the first order's answer
    "ws-disconnect": {"ws_disconnect_every": 1.0},
    "sequence-gap": {"sequence_gap_every": 80},
}
TRIGGERED = {"latency": None, "429": "rate_limited", "5xx": "errors", "drop-after-accept": "dropped",
             "ws-disconnect": "ws_disconnects", "sequence-gap": "sequence_gaps"}


@pytest.mark.parametrize("name", list(FAULTS))
def test_session_under_fault(tmp_path, name):
    db = tmp_path / "real.sqlite"
    with LocalExchange(keys=KEYS, speed=20, loop=True, faults=Faults(**{"seed": 5, **FAULTS[name]})) as ex:
        opts = LiveOptions(checkpoint="scripted:alternate", real=True, base_url=ex.url, keys=ApiKeys(KEY, SECRET),
                           db=str(db), duration=3.5, interval_ms=150, recv_window_ms=1000)
        code, res, msg = run_live(opts, Console(file=io.StringIO()))
        stats = ex.stats
        assert code == EXIT_OK, msg
        st = Ledger(db)
        report = audit(ex, KEY, st)  # no duplicate, nothing lost, SQLite == exchange
    if TRIGGERED[name]:
        assert getattr(stats, TRIGGERED[name]) >= 1, stats
    assert report["orders"] == res.orders >= 3 and report["rejected"] == 0
    if name in ("ws-disconnect", "sequence-gap"):
        assert res.stale_steps > 0  # no order while the book was resyncing
