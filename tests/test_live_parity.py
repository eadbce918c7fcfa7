"""Backtest / paper parity (issue 16): one recorded sequence through the training env
(``TradingVectorEnv``) and through a paper ``trader live`` session fed by the local exchange replaying
the same recording over the real ccxt client, with one fixed seeded action sequence: the same rows, the
same orders (market lots, quote prices), the same fills (maker and taker lots, every step), the same
observations and the same PnL.

Exact, not approximate, in the kernel: the session's rows are sampled on the exchange clock by
``sample_top``'s rule, and its execution kernel is the env itself (cpp/exec/live_kernel.h), so the
env's equity, fees and observations are equal to the last bit -- except the first row's mid return and
trade flow (the session has no row before its first; its flow counts from the sync). The ledger holds
the same fills in decimals (prices in ticks, sizes in lots exactly; fees are the kernel's float64 fees
written out in full), so its PnL equals the env's to float64 rounding of the sums.

Units: live books count sizes in 1e-8 lots (Binance prints 8 decimals; ``trader.live.feed.market_steps``),
a converted dataset in the gcd of its sizes (1e-6 BTC for the sample). The queue model rounds in lots
(a partial fill is a whole number of lots), so the recording is replayed here in the live unit: the
same sizes, written in 1e-8 lots.
"""

from __future__ import annotations

import io
from decimal import Decimal

import numpy as np
import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from conftest import shared  # noqa: E402
from rich.console import Console  # noqa: E402
from trader.data import load_dataset  # noqa: E402
from trader.live.launch import EXIT_OK, LiveOptions, run_live  # noqa: E402
from trader.live.ledger import Ledger  # noqa: E402
from trader.live.policy import PolicySpec  # noqa: E402
from trader.sim import TradingVectorEnv, load_market, spec  # noqa: E402
from trader.venue import LocalExchange  # noqa: E402

HORIZON = 1000
LIVE_LOT = Decimal("0.00000001")
COMPARED = ("position", "equity", "fees", "maker_fees", "taker_fees", "filled", "maker_filled", "taker_filled",
            "unfilled", "quoted", "rejected", "bid_price", "ask_price")


def usdm_dataset(tmp_path):
    """200 s of the USD-M BTCUSDT recording, served on Binance's spot API (the session under test is the
    spot paper session), whose diff stream chains by ``U == previous u + 1``; USD-M diffs chain by ``pu``
    instead, so each diff's ``U`` is set to the previous message's ``u`` + 1 here. Update ids are not
    part of what the env or the kernel sees (levels, trades, times)."""
    from trader.data.binance import convert_sequence, group_sequences
    from trader.data.dataset import write_dataset
    from trader.data.events import EventKind

    path = shared("binance_hftbacktest_raw_feed", "usdm", "btcusdt_20240718.gz")
    events, meta = convert_sequence(group_sequences([path])[0], duration_s=200)
    snap = events["kind"] == int(EventKind.BOOK_SNAPSHOT)
    delta = np.flatnonzero(events["kind"] == int(EventKind.BOOK_DELTA))
    last = int(events["prev_update_id"][snap][-1] or events["update_id"][snap][-1])
    u = events["update_id"][delta]
    new_msg = np.r_[True, u[1:] != u[:-1]]
    prev_u = np.r_[last, u[:-1]]
    first = np.maximum.accumulate(np.where(new_msg, prev_u + 1, 0))
    events["first_update_id"][delta] = first
    return write_dataset(tmp_path / "usdm", events, meta)


def in_live_lots(ds, folder):
    """The dataset with its sizes in the live book's unit (1e-8)."""
    from trader.data.dataset import write_dataset

    factor = Decimal(ds.meta["lot_size"]) / LIVE_LOT
    assert factor == int(factor)
    events = np.array(ds.events)
    events["qty"] *= int(factor)
    return load_dataset(write_dataset(folder, events, dict(ds.meta, lot_size=str(LIVE_LOT))))


def env_config(actions: str, trade_size: float) -> dict:
    cfg = {"actions": actions, "horizon": HORIZON, "trade_size": trade_size, "max_position": 5 * trade_size,
           "taker_fee_bps": 4.0, "maker_fee_bps": -0.5}
    if actions == "quote":
        cfg |= {"quote_levels": 3, "quote_min_ticks": 0, "quote_flatten": True}
    return spec.check_config(**cfg)


def seeded_actions(env: dict, n: int) -> np.ndarray:
    """Random actions, each held for a few steps (a quote kept at the touch long enough to be reached)."""
    rng = np.random.default_rng(7)
    hold = 8
    if env["actions"] == "quote":
        L1 = env["quote_levels"] + 1
        acts = rng.integers(0, L1 * L1, n // hold + 1)
        acts = np.where(rng.random(len(acts)) < 0.5, acts % L1, acts)  # often the bid at the touch
        acts = np.repeat(acts, hold)[:n]
        # flatten one step in ten (a market order), so that positions also come back
        return np.where(rng.random(n) < 0.1, acts + L1 * L1, acts)
    return rng.choice(3, n, p=[0.5, 0.25, 0.25])


def paper_session(data, env: dict, actions: np.ndarray, db, seconds: float):
    """A paper `trader live` session over the replay of `data`; per step: the row time, obs, action,
    the kernel's outputs."""
    steps = []

    def on_step(session, obs, action):
        steps.append((session.kernel.ts_ns, obs.copy(), int(action), session.kernel.outputs(), session.plan))

    it = iter(actions.tolist())
    policy = PolicySpec(lambda obs: np.array([next(it)]), "seeded", dict(env))
    with LocalExchange(data, speed=10, market="spot") as ex:
        opts = LiveOptions(symbol="BTC/USDT", checkpoint=policy, base_url=ex.url, db=str(db), duration=seconds,
                           interval_ms=100, fee_bps=env["taker_fee_bps"], on_step=on_step)
        code, res, msg = run_live(opts, Console(file=io.StringIO()))
    assert code == EXIT_OK, msg
    return steps, res


@pytest.mark.parametrize("actions,data", [("quote", "sample"), ("discrete", "sample"), ("quote", "usdm")])
def test_paper_session_equals_the_env(tmp_path, actions, data):
    ds = in_live_lots(load_dataset(None if data == "sample" else usdm_dataset(tmp_path)), tmp_path / "live_lots")
    trade_size = 0.001
    env = env_config(actions, trade_size)
    acts = seeded_actions(env, 10_000)
    steps, res = paper_session(ds, env, acts, tmp_path / "paper.sqlite", seconds=8.0)
    assert res.skipped_orders == 0 and res.stale_steps == 0 and len(steps) > 60

    market = load_market(ds, interval_ms=100.0)
    r0 = int(np.searchsorted(market.ts, steps[0][0]))
    assert market.ts[r0] == steps[0][0]
    n = min(len(steps), HORIZON)
    assert np.array_equal(market.ts[r0:r0 + n], [s[0] for s in steps[:n]])  # the same rows, one by one
    vec = TradingVectorEnv(market, num_envs=1, start_min=r0, start_max=r0,
                           **{k: v for k, v in env.items() if k not in ("tick_size", "lot_size", "start_min", "start_max")})
    obs, info = vec.reset(seed=0)
    D = market.features.shape[1]
    ret_col = 4 * market.book.shape[1]  # the mid return since the previous row: the session has none at its first
    first = obs[0].copy()
    own = [ret_col, D - 2, D - 1]  # mid return, trade volume and imbalance: the session has no earlier row
    first[own] = steps[0][1][own]
    assert np.array_equal(first, steps[0][1])
    orders = fills = 0
    for i in range(1, n):
        obs, _, _, _, info = vec.step(np.array([acts[i - 1]]))
        _ts, live_obs, live_action, out, _plan = steps[i]
        assert live_action == acts[i]
        assert np.array_equal(obs[0], live_obs), f"step {i}"
        for f in COMPARED:
            assert info[f][0] == out[f], f"step {i}: {f} env {info[f][0]} live {out[f]}"
        orders += int(info["quoted"][0] > 0) + int(info["taker_filled"][0] != 0)
        fills += int(info["filled"][0] != 0)
    assert fills > 3 and orders > 3
    if actions == "quote":
        assert sum(s[3]["maker_filled"] for s in steps[:n]) > 0  # the queue model filled resting quotes

    # the ledger: the kernel's orders and fills in decimals, the same PnL
    st = Ledger(tmp_path / "paper.sqlite")
    last = steps[-1][3]
    pos = st.position("BTC/USDT")
    lot = Decimal(ds.meta["lot_size"])
    assert pos.base == last["position"] * lot
    tick = float(Decimal(ds.meta["tick_size"]))
    top = market.book[r0 + len(steps) - 1, 0]
    mid = 0.5 * (top[0] + top[2]) * tick
    assert pos.equity(mid) + env["initial_cash"] == pytest.approx(last["equity"], abs=1e-6)
    fees = sum((f.fee for f in st.fills()), Decimal(0))
    assert float(fees) == pytest.approx(last["fees"], abs=1e-9)
    # every order the kernel's plans announced, in order, and nothing else (then: same fills, same PnL)
    k = {"tick": Decimal(ds.meta["tick_size"]), "lot": lot}
    want = []
    for *_, plan in steps:
        if plan.market_lots:
            want.append(("buy" if plan.market_lots > 0 else "sell", "market", abs(plan.market_lots) * k["lot"], None))
        for side, q in (("buy", plan.bid), ("sell", plan.ask)):
            if q.price and not q.kept:
                want.append((side, "limit", q.lots * k["lot"], q.price * k["tick"]))
    assert [(o.side, o.type, o.amount, o.price) for o in st.orders()] == want
    filled = sum(abs(s[3]["maker_filled"]) + abs(s[3]["taker_filled"]) for s in steps)
    assert sum((f.amount for f in st.fills()), Decimal(0)) == filled * lot  # each kernel fill once in the ledger
    quotes = [o for o in st.orders() if o.type == "limit"]
    if actions == "quote":
        assert quotes and all(o.params == {"postOnly": True} for o in quotes)
        assert {o.status for o in quotes} <= {"filled", "cancelled", "rejected", "open"}
    else:
        assert not quotes


@pytest.mark.parametrize("config", [
    {"actions": "discrete"},
    {"actions": "continuous", "order_latency_ns": 150_000_000},
    {"actions": "quote", "quote_flatten": True, "order_latency_ns": 30_000_000, "cancel_latency_ns": 20_000_000},
    {"actions": "quote_continuous", "quote_flatten": True, "queue_model": "log", "quote_min_ticks": -1},
], ids=["discrete", "continuous-latency", "quote-latency", "quote_continuous-log"])
def test_kernel_equals_the_env_row_by_row(config):
    """The kernel alone, fed the sample's rows one at a time (no server): every action mode, latencies,
    queue models; the plan it gives before a step is what the env then does (quote prices, new orders)."""
    from trader import _core

    market = load_market(None, interval_ms=100.0)
    env = spec.check_config(horizon=1000, trade_size=0.001, max_position=0.004, maker_fee_bps=-0.2, **config)
    options = {k: v for k, v in env.items() if k not in ("tick_size", "lot_size", "start_min", "start_max", "num_agents")}
    r0, n = 40, 700
    vec = TradingVectorEnv(market, num_envs=1, start_min=r0, start_max=r0, **options)
    obs, info = vec.reset(seed=0)
    kernel = _core.LiveKernel(market.book.shape[1], market.features.shape[1], market.tick_size, market.lot_size, **options)
    kernel.append(market.book[r0], market.features[r0], int(market.ts[r0]), np.zeros((0, 4), np.int64))
    kernel.reset()
    assert np.array_equal(kernel.obs, obs[0])
    rng = np.random.default_rng(3)
    space = vec.single_action_space
    fills = quotes = 0
    for i in range(1, n):
        if hasattr(space, "n"):
            a = int(rng.integers(space.n))
        else:
            a = np.clip(rng.normal(0, 0.7, space.shape), -1, 1).astype(np.float32)
        plan = kernel.plan(a)
        r = r0 + i
        kernel.append(market.book[r], market.features[r], int(market.ts[r]), market.records[market.starts[r - 1]:market.starts[r]])
        kernel.step(a)
        obs, _, _, _, info = vec.step(np.asarray([a]))
        out = kernel.outputs()
        assert np.array_equal(kernel.obs, obs[0]), f"step {i}"
        for f in COMPARED:
            assert info[f][0] == out[f], f"step {i}: {f}"
        if env["actions"].startswith("quote"):
            new = [plan[s]["lots"] for s in ("bid", "ask") if plan[s]["price"] and not plan[s]["kept"]]
            assert out["quoted"] == sum(new)  # the orders the plan announced are the ones the step sent
            quotes += len(new)
        fills += len(kernel.fills())
        assert sum(f[4] for f in kernel.fills()) == abs(out["maker_filled"]) + abs(out["taker_filled"])
    assert fills > 5 and (quotes > 50 or not env["actions"].startswith("quote"))


def test_kernel_refuses_bad_input():
    from trader import _core

    k = _core.LiveKernel(10, 46, 0.01, 1e-6, actions="quote", quote_levels=3)
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        _core.LiveKernel(10, 46, 0.01, 1e-6, bogus=1)
    with pytest.raises(ValueError, match="quote_levels"):
        _core.LiveKernel(2, 46, 0.01, 1e-6, actions="quote", quote_levels=5)
    with pytest.raises(ValueError, match="book: expected an int64 array \\[levels, 4\\] \\(10 levels\\)"):
        k.append(np.zeros((5, 4), np.int64), np.zeros(46, np.float32), 0, np.zeros((0, 4), np.int64))
    with pytest.raises(ValueError, match="features: expected a float32 array \\[dim\\] \\(46 columns\\)"):
        k.append(np.zeros((10, 4), np.int64), np.zeros(40, np.float32), 0, np.zeros((0, 4), np.int64))
    top = np.zeros((10, 4), np.int64)
    top[0] = [100, 5, 99, 5]
    with pytest.raises(ValueError, match="row 0 needs a best bid and a best ask with bid < ask"):
        k.append(top, np.zeros(46, np.float32), 0, np.zeros((0, 4), np.int64))
    top[0] = [99, 5, 100, 5]
    bad = np.zeros(46, np.float32)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="features: non-finite value at row 0, column 3"):
        k.append(top, bad, 0, np.zeros((0, 4), np.int64))
    with pytest.raises(ValueError, match="records: record 0 has kind 7"):
        k.append(top, np.zeros(46, np.float32), 100, np.array([[100, 99, 5, 7 << 56]], np.int64))
    k.append(top, np.zeros(46, np.float32), 100, np.zeros((0, 4), np.int64))
    with pytest.raises(RuntimeError, match="plan: reset first"):
        k.plan(0)
    k.reset()
    with pytest.raises(ValueError, match=r"action: 16 is not in \[0, 16\) \(quote mode\)"):
        k.plan(16)
    with pytest.raises(RuntimeError, match="the next row has not arrived"):
        k.step(0)
    with pytest.raises(ValueError, match="ts: row 1 at 50 ns is before the previous row"):
        k.append(top, np.zeros(46, np.float32), 50, np.zeros((0, 4), np.int64))
