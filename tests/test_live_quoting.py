"""Post-only quotes through ``trader.live.quoting.requote`` and the real ccxt client against the local exchange:
an unchanged price keeps the order, a new price cancels it and sends a new one, a crossing quote is
refused by the exchange, and with every order answer dropped no order is placed twice or lost."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from conftest import QUOTES_FROM_THE_START
from trader.live.audit import audit
from trader.live.broker import CcxtBroker
from trader.live.exchange_client import make_client
from trader.live.keys import ApiKeys
from trader.live.ledger import Ledger
from trader.live.quoting import follow_fills, requote
from trader.venue import Faults, LocalExchange

KEY, SECRET = "quote-test-key-9f8e7d", "quote-test-secret-6c5b4a39"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}}}
AMOUNT = Decimal("0.01")


def test_quotes_keep_replace_reject_and_survive_dropped_answers(tmp_path):
    async def main(ex):
        client = make_client(base_url=ex.url, keys=ApiKeys(KEY, SECRET), recv_window_ms=1000, timeout_ms=10_000)
        try:
            await client.load_markets()
            st = Ledger(tmp_path / "quotes.sqlite")
            broker = CcxtBroker(st, client, "BTC/USDT", recv_window_ms=1000)
            tick = ex.replay.tick
            bid, ask = Decimal(ex.book(1)["bids"][0][0]), Decimal(ex.book(1)["asks"][0][0])
            first = await requote(broker, "buy", bid - 5 * tick, AMOUNT)
            assert first.status == "open" and first.params == {"postOnly": True}
            kept = await requote(broker, "buy", bid - 5 * tick, AMOUNT)
            assert kept.client_id == first.client_id  # unchanged price: the same order, nothing sent
            moved = await requote(broker, "buy", bid - 6 * tick, AMOUNT)
            assert moved.client_id != first.client_id and moved.status == "open"
            assert st.order(first.client_id).status == "cancelled"
            sell = await requote(broker, "sell", ask + 3 * tick, AMOUNT)
            assert sell.status == "open" and st.order(moved.client_id).status == "open"  # sides are separate
            crossing = await requote(broker, "sell", bid, AMOUNT)  # would take: LIMIT_MAKER refused
            assert crossing.status == "rejected" and "would immediately match" in crossing.error
            assert st.order(sell.client_id).status == "cancelled"

            ex.faults.drop_after_accept = 1.0  # every accepted create / cancel loses its answer
            dropped = await requote(broker, "buy", bid - 7 * tick, AMOUNT)
            assert dropped.status == "open" and dropped.attempts == 1  # found by client id, not resent
            assert st.order(moved.client_id).status == "cancelled"
            ex.faults.drop_after_accept = 0.0
            assert await requote(broker, "buy", None, AMOUNT) is None  # no quote: the bid is cancelled
            assert st.order(dropped.client_id).status == "cancelled"
            await requote(broker, "sell", ask + 2 * tick, AMOUNT)
            assert await broker.cancel_all("test end") == 1
            return st
        finally:
            await client.close()

    with LocalExchange(keys=KEYS, speed=0, faults=Faults(seed=3)) as ex:
        ex.advance(5.0)
        st = asyncio.run(main(ex))
        assert ex.stats.dropped >= 2
        orders = ex.orders(KEY)
        ids = [o["clientOrderId"] for o in orders]
        assert len(ids) == len(set(ids)) == 5  # each quote once on the exchange (the crossing one refused)
        assert {o["type"] for o in orders} == {"LIMIT_MAKER"} and not [o for o in orders if o["status"] == "NEW"]
        assert {r.client_id for r in st.orders(("cancelled",))} == set(ids)
        audit(ex, KEY, st)


def test_fills_from_the_user_data_stream_with_rest_backfill_after_a_drop(tmp_path):
    """A resting post-only bid at the best bid fills piece by piece as the hand-stepped replay trades
    through it; the fills come over the user-data stream, the stream is dropped mid-way, and the REST
    backfill after the reconnect finds what the stream missed: every trade once, the balances equal."""

    async def main(ex):
        client = make_client(base_url=ex.url, keys=ApiKeys(KEY, SECRET), recv_window_ms=1000, timeout_ms=10_000)
        try:
            await client.load_markets()
            st = Ledger(tmp_path / "fills.sqlite")
            broker = CcxtBroker(st, client, "BTC/USDT", recv_window_ms=1000)
            row = await requote(broker, "buy", Decimal(ex.book(1)["bids"][0][0]), Decimal("1.5"))
            assert row.status == "open"
            stop = asyncio.Event()
            task = asyncio.ensure_future(follow_fills(broker, stop))
            for _ in range(300):
                if ex.call(lambda: sum(len(s) for s in ex.userdata.subs.values())) == 1:
                    break
                await asyncio.sleep(0.01)
            streamed = dropped = 0
            for _ in range(200):
                ex.advance(0.1)
                await asyncio.sleep(0.03)
                if not dropped and st.fills(row.client_id):
                    # only the stream records fills without updating the order row (sync sets filled)
                    streamed = len(st.fills(row.client_id)) if st.order(row.client_id).filled == 0 else 0
                    dropped = ex.drop_user_streams()
                if sum(Decimal(t["qty"]) for t in ex.call(lambda: list(ex.engine.accounts[KEY].trades))) == 1.5:
                    break
            stop.set()
            await asyncio.wait_for(task, 30)
            await broker.cancel_all("test end")
            return st, broker, row, streamed, dropped
        finally:
            await client.close()

    with LocalExchange(keys=KEYS, speed=0) as ex:
        ex.advance(5.0)
        st, broker, row, streamed, dropped = asyncio.run(main(ex))
        assert streamed >= 1 and dropped == 1 and broker.stream_drops >= 1
        fills = st.fills(row.client_id)
        final = st.order(row.client_id)
        assert final.status == "filled" and sum(f.amount for f in fills) == final.filled == Decimal("1.5")
        assert len({f.trade_id for f in fills}) == len(fills) > streamed  # and the fills after the drop
        audit(ex, KEY, st)


def test_quoting_session_end_to_end_paper_and_real(tmp_path, restore_torch_globals):
    """A PPO agent trained with ``--actions quote`` (tiny, in the test) runs ``trader live`` against the
    local exchange: paper (the kernel's quotes and fills in the ledger, nothing sent) and real (the same
    kernel's quotes sent as post-only LIMIT_MAKER orders, kept at an unchanged price, cancelled at the
    end; the ledger equals the exchange)."""
    from rich.console import Console
    from trader.live.launch import EXIT_OK, LiveOptions, run_live
    from trader.live.policy import load_policy
    from trader.rl import ppo
    from trader.run.lifecycle import resolve_args

    args = resolve_args(ppo.Args, None, {"total_timesteps": 128, "num_envs": 2, "num_steps": 64, "runs_dir": str(tmp_path),
                                         "track": False, "progress_bar": False, "cuda": False, "actions": "quote",
                                         "quote_levels": 3, "max_position": 0.03, "feature_set": 1,
                                         **QUOTES_FROM_THE_START})
    run_dir = ppo.train(args)["run_dir"]
    spec = load_policy(run_dir)
    assert spec.env["actions"] == "quote" and spec.env["quote_levels"] == 3 and spec.obs_dim == 46 + 3 + 6

    def session(real: bool, db):
        plans = []
        opts = LiveOptions(checkpoint=run_dir, real=real, keys=ApiKeys(KEY, SECRET) if real else None, db=str(db),
                           duration=4.0, recv_window_ms=1000,
                           on_step=lambda s, obs, action: plans.append((obs.shape, s.plan)))
        with LocalExchange(keys=KEYS, speed=10, loop=True) as ex:
            opts.base_url = ex.url
            code, res, msg = run_live(opts, Console(file=io.StringIO()))
            assert code == EXIT_OK, msg
            orders = ex.orders(KEY)
            report = audit(ex, KEY, Ledger(db)) if real else None
            assert ex.call(lambda: len(ex.engine.open)) == 0  # nothing left resting
        return res, plans, orders, report

    res, plans, orders, _ = session(False, tmp_path / "paper.sqlite")
    assert orders == [] and res.steps > 10 and all(shape == (55,) for shape, _ in plans)
    st = Ledger(tmp_path / "paper.sqlite")
    quotes = [o for o in st.orders() if o.type == "limit"]
    assert quotes and all(o.params == {"postOnly": True} for o in quotes)
    assert not [o for o in st.orders() if o.status in ("open", "pending", "unknown")]  # cancelled at the end
    sent = sum((p.bid.price > 0 and not p.bid.kept) + (p.ask.price > 0 and not p.ask.kept) for _, p in plans if p)
    assert sent == len(quotes)  # one ledger order per new kernel quote

    res, plans, orders, report = session(True, tmp_path / "real.sqlite")
    assert res.steps > 5 and res.orders == report["ledger_orders"] and len(orders) == report["orders"] > 0
    assert report["orders"] == report["ledger_orders"] - report["rejected"]  # the refused ones never rested
    assert {o["type"] for o in orders} <= {"LIMIT_MAKER", "MARKET"} and any(o["type"] == "LIMIT_MAKER" for o in orders)
    ids = [o["clientOrderId"] for o in orders]
    assert len(ids) == len(set(ids))  # never a duplicate


def test_the_move_guard_set_at_launch_holds_quotes_back(tmp_path, restore_torch_globals):
    """`trader live --guard-window-ms ...` over a run trained without the guard: the kernel (the env) takes the
    guard from the launch, and until it is armed (six windows of the session's own rows) it quotes nothing
    that would open a position, so a flat paper session sends no quote; the same run without the flag quotes."""
    from click.testing import CliRunner
    from rich.console import Console
    from trader.cli import main
    from trader.live.launch import EXIT_OK, EXIT_REFUSED, LiveOptions, run_live
    from trader.rl import ppo
    from trader.run.lifecycle import resolve_args

    args = resolve_args(ppo.Args, None, {"total_timesteps": 128, "num_envs": 2, "num_steps": 64, "runs_dir": str(tmp_path),
                                         "track": False, "progress_bar": False, "cuda": False, "actions": "quote",
                                         "quote_levels": 3, "max_position": 0.03, "feature_set": 1,
                                         **QUOTES_FROM_THE_START})
    run_dir = ppo.train(args)["run_dir"]
    guard = {"guard_window_ns": 600_000_000_000}  # ten-minute windows: not armed within the session
    quoted = {}
    for name, options in (("guarded", guard), ("as trained", {})):
        flags = []
        opts = LiveOptions(checkpoint=run_dir, db=str(tmp_path / f"{name}.sqlite"), duration=3.0, risk=options,
                           on_step=lambda s, obs, action: flags.append(s.kernel.core.outputs()["guarded"]))
        with LocalExchange(keys=KEYS, speed=10, loop=True) as ex:
            opts.base_url = ex.url
            code, res, msg = run_live(opts, Console(file=io.StringIO()))
        assert code == EXIT_OK, msg
        assert res.steps > 10 and set(flags) == {bool(options)}
        quoted[name] = [o for o in Ledger(tmp_path / f"{name}.sqlite").orders() if o.type == "limit"]
    assert quoted["guarded"] == [] and quoted["as trained"]
    # the flags, checked before anything starts
    out = CliRunner().invoke(main, ["live", "--checkpoint", run_dir, "--guard-sigmas", "0"])
    assert out.exit_code == 2 and "--guard-sigmas: expected a finite value > 0" in out.output
    # --guard-sides needs a guard, the run's or the launch's: this run has none, so the start is refused once it is read
    out = CliRunner().invoke(main, ["live", "--checkpoint", run_dir, "--guard-sides", "against_move"])
    assert out.exit_code == EXIT_REFUSED and "guard_sides / guard_window_ns: expected a window > 0" in out.output
