"""``trader live`` end to end with the real ccxt client against the local exchange replaying the
sample: a paper session, a real-broker session (SQLite equals the exchange), restart and
reconciliation, refusals to start, the kill switch, the stale-data guard, a trained checkpoint, keys
that never appear in any output, and SIGINT / SIGTERM stopping the command cleanly."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from rich.console import Console
from trader.live.audit import audit
from trader.live.keys import ApiKeys
from trader.live.launch import EXIT_KILLED, EXIT_OK, EXIT_REFUSED, LiveOptions, run_live
from trader.live.ledger import Ledger
from trader.sim import spec
from trader.venue import LocalExchange
from conftest import PACKAGE_ROOT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "live-test-key-5f1c2a9e", "live-test-secret-93be71d04c"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}}}


def server(**kw):
    return LocalExchange(keys=KEYS, speed=20, loop=True, **kw)


def options(ex, db, **kw):
    base = {"checkpoint": "scripted:alternate", "real": True, "base_url": ex.url, "keys": ApiKeys(KEY, SECRET),
            "db": str(db), "duration": 2.5, "interval_ms": 100, "recv_window_ms": 1000}
    base.update(kw)
    return LiveOptions(**base)


def console():
    return Console(width=300, file=io.StringIO())


def test_paper_session_end_to_end(tmp_path):
    db = tmp_path / "paper.sqlite"
    with server() as ex:
        code, res, msg = run_live(options(ex, db, real=False, keys=None, record_dir=str(tmp_path / "raw")), console())
        assert ex.orders(KEY) == []  # nothing was sent
    assert code == EXIT_OK and msg == "duration reached"
    assert res.orders >= 8 and res.steps >= res.orders
    st = Ledger(db)
    orders = st.orders()
    # the kernel executes an order at the next row: the last one, sent at the last row, never ran
    assert len(orders) == res.orders and all(o.status == "filled" for o in orders[:-1])
    assert orders[-1].status in ("filled", "cancelled")
    assert [o.side for o in orders[:4]] == ["buy", "sell", "buy", "sell"]
    fills = st.fills()
    assert {f.client_id for f in fills} == {o.client_id for o in orders if o.status == "filled"}
    rate = Decimal(str(spec.defaults()["taker_fee_bps"])) / 10000  # paper's default fee is training's (issue 17)
    for f in fills:  # the kernel charges the paper taker fee on the notional
        assert abs(f.fee - f.price * f.amount * rate) < Decimal("1e-9")
    pos = st.position("BTC/USDT")
    assert pos.base == sum(o.signed_filled for o in orders) and pos.base in (0, Decimal("0.01"))
    assert float(pos.quote) < 0  # fees and spread cost money
    assert st.db.execute("SELECT COUNT(*) FROM equity").fetchone()[0] >= 2
    assert [e["kind"] for e in st.events()] == ["start", "stop"]
    # --record: the stream the session traded on, in trader record's format
    from trader.data.verify import verify_raw

    (r,) = verify_raw(sorted((tmp_path / "raw").glob("*.gz")))
    assert r.ok and r.compared > 0 and r.lines["depth"] > 100


def test_real_session_end_to_end_then_restart(tmp_path):
    db = tmp_path / "real.sqlite"
    with server() as ex:
        code, res, msg = run_live(options(ex, db), console())
        assert code == EXIT_OK, msg
        st = Ledger(db)
        report = audit(ex, KEY, st)
        assert report["orders"] == res.orders >= 8 and report["fills"] >= res.orders and report["rejected"] == 0
        assert all(o.status == "filled" and o.attempts == 1 for o in st.orders())
        btc = ex.balances(KEY)["BTC"][0]
        assert btc == Decimal(1) + st.position("BTC/USDT").base
        st.close()
        # a second session on the same ledger: reconciled, goes on, still consistent
        code, res2, msg = run_live(options(ex, db, duration=1.5), console())
        assert code == EXIT_OK, msg
        st = Ledger(db)
        assert audit(ex, KEY, st)["orders"] == res.orders + res2.orders
        assert [e["kind"] for e in st.events()] == ["reconcile", "start", "stop", "reconcile", "start", "stop"]


def test_refuses_to_start_with_an_open_order_it_does_not_know(tmp_path):
    db = tmp_path / "real.sqlite"
    with server() as ex:
        c = ccxt.binance(ex.ccxt_config(KEY, SECRET))
        c.load_markets()
        bid = float(ex.book(1)["bids"][0][0])
        c.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2), params={"clientOrderId": "by-hand-1"})
        code, res, msg = run_live(options(ex, db), console())
        assert code == EXIT_REFUSED and res is None
        assert msg.startswith("refusing to start") and "by-hand-1" in msg and "unknown to the ledger" in msg
        assert len(ex.orders(KEY)) == 1  # we placed nothing
        assert Ledger(db).events("refused")


def test_refuses_when_balances_do_not_match_and_rebaseline_accepts(tmp_path):
    db = tmp_path / "real.sqlite"
    with server() as ex:
        assert run_live(options(ex, db, duration=1.0), console())[0] == EXIT_OK
        c = ccxt.binance(ex.ccxt_config(KEY, SECRET))
        c.load_markets()
        c.create_order("BTC/USDT", "market", "buy", 0.02)  # a trade the ledger knows nothing of
        code, _, msg = run_live(options(ex, db, duration=1.0), console())
        assert code == EXIT_REFUSED and "balances do not match the ledger" in msg and "BTC: exchange" in msg
        code, _, msg = run_live(options(ex, db, duration=1.0, rebaseline=True), console())
        assert code == EXIT_OK, msg


def test_kill_switch_cancels_flattens_and_blocks_restarts(tmp_path):
    db = tmp_path / "real.sqlite"
    with server() as ex:
        code, res, msg = run_live(options(ex, db, checkpoint="scripted:buy", daily_loss_limit=1.0, max_position=0.05,
                                          flatten_on_kill=True, duration=10), console())
        assert code == EXIT_KILLED and "daily loss limit" in msg and res.killed
        st = Ledger(db)
        assert st.active_kill()["reason"].startswith("daily loss limit")
        assert st.position("BTC/USDT").base == 0  # flattened
        assert st.orders()[-1].reason == "flatten" and st.orders()[-1].status == "filled"
        assert audit(ex, KEY, st)["position"] == 0
        assert ex.call(lambda: len(ex.engine.open)) == 0
        st.close()
        code, _, msg = run_live(options(ex, db), console())
        assert code == EXIT_REFUSED and "kill switch tripped earlier" in msg
        code, res, msg = run_live(options(ex, db, clear_kill=True, duration=1.0), console())
        assert code == EXIT_OK and res.orders > 0


def test_stale_data_stops_orders_and_cancels_resting_ones(tmp_path):
    from trader.live.broker import CcxtBroker
    from trader.live.exchange_client import make_client
    from trader.live.feed import LiveFeed
    from trader.live.kernel import ExecutionKernel
    from trader.live.observation import RowFeatures
    from trader.live.policy import load_policy
    from trader.live.risk import RiskLimits, RiskManager
    from trader.live.session import LiveSession, SessionConfig

    async def main(ex):
        public = make_client(base_url=ex.url)
        private = make_client(base_url=ex.url, keys=ApiKeys(KEY, SECRET), recv_window_ms=1000)
        await public.load_markets()
        await private.load_markets()
        st = Ledger(tmp_path / "s.sqlite")
        feed = LiveFeed(public, "BTC/USDT", stale_after=0.5, interval_ms=50)
        broker = CcxtBroker(st, private, "BTC/USDT", recv_window_ms=1000)
        policy = load_policy("scripted:hold")
        kernel = ExecutionKernel(policy.env, tick=feed.tick, lot=feed.lot, levels=policy.depth,
                                 features=RowFeatures(feed.lot_size))
        session = LiveSession(feed, broker, st, policy, RiskManager(RiskLimits(0.1)), kernel, SessionConfig())
        task = asyncio.ensure_future(session.run())
        while session.result.steps < 3:
            await asyncio.sleep(0.02)
        bid = Decimal(ex.book(1)["bids"][0][0])
        row = st.new_order("BTC/USDT", "buy", "limit", Decimal("0.01"), (bid * Decimal("0.95")).quantize(Decimal("0.01")),
                           {"timeInForce": "GTC"}, "resting")
        row = await broker._send(row)
        assert row.status == "open"
        ex.pause()
        t0 = time.monotonic()
        while st.order(row.client_id).status == "open":
            assert time.monotonic() - t0 < 10
            await asyncio.sleep(0.05)
        steps_when_stale = session.result.steps
        await asyncio.sleep(0.3)
        assert session.result.steps == steps_when_stale and session.result.stale_steps > 0
        ex.resume()
        while session.result.steps == steps_when_stale:
            await asyncio.sleep(0.02)
        session.stop()
        await task
        await public.close()
        await private.close()
        return st, row

    with server() as ex:
        st, row = asyncio.run(main(ex))
        assert st.order(row.client_id).status == "cancelled"
        (o,) = ex.orders(KEY)
        assert o["status"] == "CANCELED" and o["clientOrderId"] == row.client_id
        audit(ex, KEY, st)


def test_trained_checkpoint_drives_a_paper_session(tmp_path):
    from trader.rl import ppo
    from trader.run.lifecycle import resolve_args

    args = resolve_args(ppo.Args, None, {"total_timesteps": 128, "num_envs": 2, "num_steps": 64,
                                         "runs_dir": str(tmp_path), "track": False, "progress_bar": False,
                                         "cuda": False})
    run_dir = ppo.train(args)["run_dir"]
    seen = []
    with server() as ex:
        from trader.live.policy import load_policy

        spec = load_policy(run_dir)
        assert spec.obs_dim == 49 and spec.trade_size == 0.01 and spec.max_position == 0.1

        def act(obs):
            seen.append(obs.copy())
            return spec.act(obs)

        code, res, _msg = run_live(options(ex, tmp_path / "p.sqlite", real=False, keys=None, checkpoint=act,
                                          duration=1.5), console())
    assert code == EXIT_OK and res.steps > 5
    assert all(o.shape == (1, 49) for o in seen)  # 46 book features + 3 account features, as in training


def test_keys_never_appear_in_any_output(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "TRADER_API_KEY": KEY, "TRADER_API_SECRET": SECRET}
    log = tmp_path / "live.log"
    db = tmp_path / "real.sqlite"
    with server() as ex:
        ok = subprocess.run([sys.executable, "-m", "trader.live.cli", "live", "--real", "--base-url", ex.url,
                             "--checkpoint", "scripted:alternate", "--db", str(db), "--duration", "1.5",
                             "--recv-window-ms", "1000", "--log-file", str(log), "-v"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
        bad_env = {**env, "TRADER_API_SECRET": SECRET + "-wrong"}
        bad = subprocess.run([sys.executable, "-m", "trader.live.cli", "live", "--real", "--base-url", ex.url,
                              "--db", str(tmp_path / "other.sqlite"), "--duration", "1", "--log-file", str(log), "-v"],
                             env=bad_env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "stopped: duration reached" in ok.stdout and "orders" in ok.stdout
    assert bad.returncode == EXIT_REFUSED and "refus" in bad.stderr
    texts = [ok.stdout, ok.stderr, bad.stdout, bad.stderr, log.read_text()]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("*.sqlite*")]
    assert "reconciled" in log.read_text()
    for text in texts:
        for secret in (SECRET, KEY, SECRET + "-wrong"):
            assert secret not in text


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_command_cleanly(tmp_path, sig):
    """``trader live --real`` told to run for a minute, stopped by SIGINT (Ctrl-C) or SIGTERM (a supervisor)
    once it has sent orders: exit 0, the ledger's stop event names the signal, nothing left resting on the
    exchange, the ledger equal to it (trader.live.signals)."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "TRADER_API_KEY": KEY, "TRADER_API_SECRET": SECRET}
    db = tmp_path / "real.sqlite"
    with server() as ex:
        proc = subprocess.Popen([sys.executable, "-m", "trader.live.cli", "live", "--real", "--base-url", ex.url,
                                 "--checkpoint", "scripted:alternate", "--db", str(db), "--duration", "60",
                                 "--recv-window-ms", "1000"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 45
            while len(ex.orders(KEY)) < 2 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            assert proc.poll() is None and len(ex.orders(KEY)) >= 2, "no orders within 45 s"
            proc.send_signal(getattr(signal, sig))
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == EXIT_OK, err[-3000:]
        assert ex.call(lambda: len(ex.engine.open)) == 0
        st = Ledger(db)
        audit(ex, KEY, st)
    assert f"stopped: signal {sig}" in out
    (stop,) = st.events("stop")
    assert stop["detail"].startswith(f"signal {sig};")
