"""Websocket streams of the local exchange through the real ccxt.pro client (``ccxt.pro.binance``)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("aiohttp")
ccxt = pytest.importorskip("ccxt")
ccxtpro = pytest.importorskip("ccxt.pro")

from trader.data.events import EventFlag, EventKind
from trader.venue import Faults, LocalExchange

SYMBOL = "BTC/USDT"
DEPTH = 50


def levels(side):
    return [[float(p), float(q)] for p, q in side[:DEPTH]]


async def wait_in_sync(ex, client, timeout=10.0):
    """After ``ex.pause()``: wait until the client's book has the server's last update id, watching the book
    again whenever a watch ends (a gap among the last diffs before the pause leaves the book behind until a
    new watch resubscribes and loads a snapshot, as a live feed does)."""
    target = ex.last_update_id
    deadline = time.monotonic() + timeout
    watch = None
    try:
        while time.monotonic() < deadline:
            ob = client.orderbooks.get(SYMBOL)
            if ob is not None and ob["nonce"] == target:
                return ob
            if watch is None or watch.done():
                if watch is not None and not watch.cancelled():
                    watch.exception()  # retrieved: a ChecksumError here is the gap being resynced
                watch = asyncio.ensure_future(client.watch_order_book(SYMBOL))
            await asyncio.sleep(0.02)
    finally:
        if watch is not None and not watch.done():
            watch.cancel()
    raise AssertionError(f"client book never reached update id {target}")


async def watch_book_for(ex, client, seconds):
    """Call watch_order_book for ``seconds``; returns (updates, errors). Errors are caught the way a live
    feed must: a NetworkError (disconnect; ChecksumError on a gap is one too) means call it again."""
    updates, errors = 0, []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            ob = await asyncio.wait_for(client.watch_order_book(SYMBOL), 10)
            assert ob["bids"][0][0] < ob["asks"][0][0]
            updates += 1
        except ccxt.NetworkError as exc:
            errors.append(exc)
            # ccxt keeps the rejected future cached until the resubscription's snapshot arrives: calling
            # again at once raises the same exception object in a tight loop, so back off a little
            await asyncio.sleep(0.05)
    return updates, errors


def assert_book_matches(ex, ob):
    server = ex.book(DEPTH)
    assert ob["nonce"] == server["lastUpdateId"]
    assert [b[:2] for b in ob["bids"][:DEPTH]] == levels(server["bids"])
    assert [a[:2] for a in ob["asks"][:DEPTH]] == levels(server["asks"])


def run_book(faults: Faults | None, seconds: float, speed: float = 20.0):
    async def main():
        with LocalExchange(speed=speed, faults=faults or Faults()) as ex:
            client = ccxtpro.binance(ex.ccxt_config())
            try:
                await client.load_markets()
                updates, errors = await watch_book_for(ex, client, seconds)
                ex.pause()
                await client.watch_order_book(SYMBOL) if client.orderbooks.get(SYMBOL) is None else None
                ob = await wait_in_sync(ex, client)
                assert_book_matches(ex, ob)
                return updates, errors, ex.stats
            finally:
                await client.close()

    return asyncio.run(main())


def test_watch_order_book_matches_server_book():
    updates, errors, stats = run_book(None, 3.0)
    assert errors == [] and updates > 100
    assert stats.sequence_gaps == 0 and stats.ws_disconnects == 0


def test_ws_disconnect_then_resubscribe_recovers_the_book():
    updates, errors, stats = run_book(Faults(ws_disconnect_every=1.0), 3.5)
    assert stats.ws_disconnects >= 2
    assert errors and all(type(e) is ccxt.NetworkError for e in errors)
    assert "closed by remote server" in str(errors[0])
    assert updates > 50


def test_sequence_gap_is_detected_and_resynced():
    updates, errors, stats = run_book(Faults(sequence_gap_every=60, seed=1), 3.5)
    assert stats.sequence_gaps >= 2
    assert errors and all(isinstance(e, ccxt.ChecksumError) for e in errors)  # ChecksumError < NetworkError
    assert "checksum validation failed" in str(errors[0])
    assert updates > 30


def test_watch_trades_yields_the_datasets_trades():
    async def main():
        with LocalExchange(speed=0) as ex:
            client = ccxtpro.binance(ex.ccxt_config())
            try:
                await client.load_markets()
                first = asyncio.ensure_future(client.watch_trades(SYMBOL))
                for _ in range(200):  # wait until the subscription is in place
                    if ex.call(lambda: any(c.subs for c in ex.hub.conns)):
                        break
                    await asyncio.sleep(0.01)
                t_start = ex.clock.now()
                ex.advance(20.0)
                t_end = ex.clock.now()
                last_id = ex.call(lambda: ex.replay.recent_trades[-1]["t"])
                got = list(await asyncio.wait_for(first, 5))
                while int(got[-1]["id"]) < last_id:
                    try:
                        got += await asyncio.wait_for(client.watch_trades(SYMBOL), 0.5)
                    except asyncio.TimeoutError:
                        # ccxt resolves a watch once per message: trades that came in the same read as
                        # the one that resolved the previous call wait in client.trades for the next
                        # message. Replay one more second to push them out.
                        ex.advance(1.0)
                got = [t for t in got if int(t["id"]) <= last_id]
                return ex, got, t_start, t_end
            finally:
                await client.close()

    ex, got, t_start, t_end = asyncio.run(main())
    ev = ex.replay._ev
    trades = ev[ev["kind"] == EventKind.TRADE]
    ts = np.maximum.accumulate(np.asarray(ev["local_ts"]))[np.asarray(ev["kind"]) == EventKind.TRADE]
    want = trades[(ts > t_start) & (ts <= t_end)]
    assert len(want) > 50
    assert [int(t["id"]) for t in got] == want["update_id"].astype(np.int64).tolist()
    tick, lot = float(ex.replay.tick), float(ex.replay.lot)
    for t, w in zip(got, want):
        assert t["price"] == pytest.approx(int(w["price"]) * tick, abs=tick / 10)
        assert t["amount"] == pytest.approx(int(w["qty"]) * lot, abs=lot / 10)
        assert t["side"] == ("sell" if int(w["flags"]) & EventFlag.ASK else "buy")
        assert t["timestamp"] == int(w["exch_ts"]) // 1_000_000
