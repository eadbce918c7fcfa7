"""Backtest / paper parity (issue 16): one recorded sequence through the training env
(``TradingVectorEnv``) and through a paper ``trader live`` session fed by the local exchange replaying
the same recording over the real ccxt client, with one fixed seeded action sequence: the same rows, the
same orders (market lots, quote prices), the same fills (maker and taker lots, every step), the same
observations and the same PnL. Spot data on the spot API; USD-M data on the USD-M API (``trader live
--market usdm``); and a checkpoint trained on feature set 2 with sizes in quote currency.

Exact, not approximate, in the kernel: the session's rows are sampled on the exchange clock by
``sample_top``'s rule, and its execution kernel is the env itself (cpp/exec/live_kernel.h), so the
env's equity, fees and observations are equal to the last bit. The env is compared on the dataset as
it would be if it began at the session's first row (``market_from``): that row has no mid return and
no touch OFI, set 2's depth scale starts there, sizes in quote currency become lots at its mid; only
that row's trade flow differs (the session counts it from the sync). The ledger holds
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

from conftest import QUOTES_FROM_THE_START, shared  # noqa: E402
from rich.console import Console  # noqa: E402
from trader.data import load_dataset  # noqa: E402
from trader.live.launch import EXIT_OK, LiveOptions, run_live  # noqa: E402
from trader.live.ledger import Ledger  # noqa: E402
from trader.live.policy import PolicySpec  # noqa: E402
from trader.sim import TradingVectorEnv, load_market, spec  # noqa: E402
from trader.venue import LocalExchange  # noqa: E402

HORIZON = 1000
LIVE_LOT = Decimal("0.00000001")
FUNDING_NS = 1721347200 * 10**9  # 2024-07-19 00:00:00 UTC
COMPARED = ("position", "equity", "fees", "maker_fees", "taker_fees", "filled", "maker_filled", "taker_filled",
            "unfilled", "quoted", "rejected", "bid_price", "ask_price")


def usdm_dataset(tmp_path):
    """170 s of the USD-M BTCUSDT recording (2024-07-18 23:57:02 UTC on), as recorded: served on the USD-M
    API (fapi, diffs chained by ``pu``) to a paper ``trader live --market usdm`` session. It holds no
    funding time (00:00 UTC): funding is a payment on the position that the env does not model and the
    paper broker does not book (a real session records the exchange's, trader.live.futures)."""
    from trader.data.binance import convert_sequence, group_sequences
    from trader.data.dataset import write_dataset

    path = shared("binance_hftbacktest_raw_feed", "usdm", "btcusdt_20240718.gz")
    events, meta = convert_sequence(group_sequences([path])[0], duration_s=170)
    assert events["exch_ts"].max() < FUNDING_NS
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


def paper_session(data, policy, db, seconds: float, market: str = "spot"):
    """A paper `trader live` session over the replay of `data` with `policy` (a PolicySpec or a
    checkpoint); per step: the row time, obs, action, the kernel's outputs, the plan."""
    steps = []

    def on_step(session, obs, action):
        steps.append((session.kernel.ts_ns, obs.copy(), int(action), session.kernel.outputs(), session.plan))

    with LocalExchange(data, speed=10, market=market) as ex:
        opts = LiveOptions(symbol="BTC/USDT", checkpoint=policy, base_url=ex.url, db=str(db), duration=seconds,
                           interval_ms=100, market=market, on_step=on_step)
        code, res, msg = run_live(opts, Console(file=io.StringIO()))
    assert code == EXIT_OK, msg
    return steps, res


def seeded_policy(env: dict, actions: np.ndarray) -> PolicySpec:
    it = iter(actions.tolist())
    return PolicySpec(lambda obs: np.array([next(it)]), "seeded", dict(env))


def market_from(ds, ts0: int, feature_set: int):
    """The dataset as the env sees it when it starts at the session's first row (time ts0): the rows from
    there, their features computed from there (the mid return, the touch OFI and set 2's depth scale
    start at the first row, as live's do) and sizes in quote currency converted at that row's mid."""
    from trader.sim import features
    from trader.sim.env import Market

    whole = load_market(ds, interval_ms=100.0)
    r0 = int(np.searchsorted(whole.ts, ts0))
    assert whole.ts[r0] == ts0
    ts, book, flow = ds.sample_top(depth=whole.book.shape[1], interval_ns=100_000_000)
    s0 = int(np.searchsorted(ts, ts0))
    assert np.array_equal(book[s0:s0 + 50], whole.book[r0:r0 + 50])
    feats = features.features(book[s0:], float(ds.lot_size), flow[s0:], feature_set=feature_set)
    first = whole.starts[r0]
    return Market(whole.book[r0:], feats[:len(whole.book) - r0], whole.ts[r0:], whole.tick_size, whole.lot_size,
                  whole.symbol, whole.records[first:], whole.starts[r0:] - first)


def assert_parity(ds, env: dict, feature_set: int, steps, db, symbol: str = "BTC/USDT"):
    """The env over the session's rows with the session's actions gives the session's observations, orders,
    fills and PnL; the ledger holds them in decimals, under the session's symbol (a USD-M session's is
    BTC/USDT:USDT: read under BTC/USDT, its position would be empty and its PnL 0 -- the "equity mismatch"
    that once kept the USD-M case on the spot API)."""
    market = market_from(ds, steps[0][0], feature_set)
    n = min(len(steps), env["horizon"])  # the env truncates there; live carries on
    assert np.array_equal(market.ts[:n], [s[0] for s in steps[:n]])  # the same rows, one by one
    vec = TradingVectorEnv(market, num_envs=1, start_min=0, start_max=0,
                           **{k: v for k, v in env.items() if k not in ("tick_size", "lot_size", "start_min", "start_max")})
    obs, info = vec.reset(seed=0)
    flow_cols = [4 * market.book.shape[1] + 4, 4 * market.book.shape[1] + 5]  # trade volume and imbalance
    first = obs[0].copy()
    first[flow_cols] = steps[0][1][flow_cols]  # the session's first interval counts trades from the sync
    assert np.array_equal(first, steps[0][1])
    orders = fills = 0
    for i in range(1, n):
        obs, _, _, _, info = vec.step(np.array([steps[i - 1][2]]))
        _ts, live_obs, _action, out, _plan = steps[i]
        assert np.array_equal(obs[0], live_obs), f"step {i}"
        for f in COMPARED:
            assert info[f][0] == out[f], f"step {i}: {f} env {info[f][0]} live {out[f]}"
        orders += int(info["quoted"][0] > 0) + int(info["taker_filled"][0] != 0)
        fills += int(info["filled"][0] != 0)
    assert fills > 3 and orders > 3
    if env["actions"] == "quote":
        assert sum(s[3]["maker_filled"] for s in steps[:n]) > 0  # the queue model filled resting quotes

    # the ledger: the kernel's orders and fills in decimals, the same PnL
    st = Ledger(db)
    last = steps[-1][3]
    assert {o.symbol for o in st.orders()} == {symbol}
    pos = st.position(symbol)
    lot = Decimal(ds.meta["lot_size"])
    assert pos.base == last["position"] * lot
    top = market.book[len(steps) - 1, 0]
    mid = 0.5 * (top[0] + top[2]) * market.tick_size
    assert pos.equity(mid) + env["initial_cash"] == pytest.approx(last["equity"], abs=1e-6)
    fees = sum((f.fee for f in st.fills()), Decimal(0))
    assert float(fees) == pytest.approx(last["fees"], abs=1e-9)
    # every order the kernel's plans announced, in order, and nothing else (then: same fills, same PnL)
    tick = Decimal(ds.meta["tick_size"])
    want = []
    for *_, plan in steps:
        if plan.market_lots:
            want.append(("buy" if plan.market_lots > 0 else "sell", "market", abs(plan.market_lots) * lot, None))
        for side, q in (("buy", plan.bid), ("sell", plan.ask)):
            if q.price and not q.kept:
                want.append((side, "limit", q.lots * lot, q.price * tick))
    assert [(o.side, o.type, o.amount, o.price) for o in st.orders()] == want
    filled = sum(abs(s[3]["maker_filled"]) + abs(s[3]["taker_filled"]) for s in steps)
    assert sum((f.amount for f in st.fills()), Decimal(0)) == filled * lot  # each kernel fill once in the ledger
    quotes = [o for o in st.orders() if o.type == "limit"]
    if env["actions"] == "quote":
        assert quotes and all(o.params == {"postOnly": True} for o in quotes)
        assert {o.status for o in quotes} <= {"filled", "cancelled", "rejected", "open"}
    else:
        assert not quotes


@pytest.mark.parametrize("actions,data,max_hold_ns", [("quote", "sample", 0), ("discrete", "sample", 0),
                                                     ("quote", "usdm", 0), ("quote", "sample", 500_000_000)])
def test_paper_session_equals_the_env(tmp_path, actions, data, max_hold_ns):
    """A paper session with seeded actions is the env, row by row, in its ledger too (assert_parity); also with
    positions closed 0.5 s after the session was last flat (max_hold_ns): the closes the kernel's plans announce are
    the market orders the paper broker records and the env sends."""
    ds = in_live_lots(load_dataset(None if data == "sample" else usdm_dataset(tmp_path)), tmp_path / "live_lots")
    env = {**env_config(actions, 0.001), "max_hold_ns": max_hold_ns}
    acts = seeded_actions(env, 10_000)
    steps, res = paper_session(ds, seeded_policy(env, acts), tmp_path / "paper.sqlite", seconds=8.0,
                               market="usdm" if data == "usdm" else "spot")
    assert res.skipped_orders == 0 and res.stale_steps == 0 and len(steps) > 60
    assert [s[2] for s in steps] == acts[:len(steps)].tolist()
    assert (sum(s[4] is not None and s[4].close and s[4].market_lots != 0 for s in steps) > 0) == bool(max_hold_ns)
    assert_parity(ds, env, 1, steps, tmp_path / "paper.sqlite", "BTC/USDT:USDT" if data == "usdm" else "BTC/USDT")


def test_checkpoint_with_feature_set_2_and_notional_sizes_runs_as_in_the_env(tmp_path, restore_torch_globals):
    """A quote agent trained (tiny, here) on feature set 2 with sizes in quote currency: ``trader live``
    reads both from its checkpoint (and its fees, horizon, grid), as ``trader backtest`` does, and observes
    exactly what the env observes on the same rows, with its lots converted at the session's first mid
    (the env's rule for a dataset's first row)."""
    from trader.live.policy import load_policy
    from trader.rl import ppo
    from trader.run.lifecycle import resolve_args

    args = resolve_args(ppo.Args, None, {"total_timesteps": 128, "num_envs": 2, "num_steps": 64, "runs_dir": str(tmp_path),
                                         "track": False, "progress_bar": False, "cuda": False, "actions": "quote",
                                         "quote_levels": 3, "quote_flatten": True, "feature_set": 2,
                                         "trade_notional": 60.0, "max_position_notional": 300.0, "taker_fee_bps": 4.0,
                                         "maker_fee_bps": -0.5, "horizon": 700, **QUOTES_FROM_THE_START})
    run_dir = ppo.train(args)["run_dir"]
    policy = load_policy(run_dir)
    assert policy.feature_set == 2 and policy.sizes_in_quote and policy.max_position is None
    assert (policy.env["trade_notional"], policy.env["taker_fee_bps"], policy.env["horizon"]) == (60.0, 4.0, 700)
    with pytest.raises(ValueError, match=r"--trade-size 0.01 \(base units\): .*\(trade_notional 60, "):
        load_policy(run_dir, trade_size=0.01)
    ds = in_live_lots(load_dataset(None), tmp_path / "live_lots")
    steps, res = paper_session(ds, run_dir, tmp_path / "paper.sqlite", seconds=8.0)
    assert res.stale_steps == 0 and len(steps) > 60 and len(steps[0][1]) == policy.obs_dim == 4 * 10 + 7 + 3 + 6
    assert_parity(ds, policy.env, 2, steps, tmp_path / "paper.sqlite")


@pytest.mark.parametrize("config", [
    {"actions": "discrete"},
    {"actions": "continuous", "order_latency_ns": 150_000_000},
    {"actions": "quote", "quote_flatten": True, "order_latency_ns": 30_000_000, "cancel_latency_ns": 20_000_000},
    {"actions": "quote_continuous", "quote_flatten": True, "queue_model": "log", "quote_min_ticks": -1},
    # the move guard (2 s windows at 2 sigmas: it trips on the sample), from the session's first row in both
    {"actions": "quote", "guard_window_ns": 2_000_000_000, "guard_sigmas": 2.0, "guard_halflife_ns": 10_000_000_000,
     "guard_hold_ns": 1_000_000_000},
    {"actions": "quote", "guard_window_ns": 2_000_000_000, "guard_sigmas": 2.0, "guard_halflife_ns": 10_000_000_000,
     "guard_hold_ns": 1_000_000_000, "guard_sides": "against_move"},
    # positions closed 1 s after they open (issue 13, session 26): the plan announces the close the step sends
    {"actions": "quote", "max_hold_ns": 1_000_000_000, "order_latency_ns": 30_000_000},
    {"actions": "discrete", "max_hold_ns": 500_000_000},
    # positions quoted out at the touch (issue 13, session 27): the plan's prices are the rule's
    {"actions": "quote", "quote_exit_touch": True, "position_cap_trades": 1, "order_latency_ns": 30_000_000},
], ids=["discrete", "continuous-latency", "quote-latency", "quote_continuous-log", "quote-guard",
        "quote-guard-against-move", "quote-max-hold",
        "discrete-max-hold", "quote-exit-touch"])
def test_kernel_equals_the_env_row_by_row(config):
    """The kernel alone, fed the sample's rows one at a time (no server): every action mode, latencies,
    queue models; the plan it gives before a step is what the env then does (quote prices, new orders)."""
    from trader import _core

    market = load_market(None, interval_ms=100.0)
    env = spec.check_config(horizon=1000, trade_size=0.001, max_position=0.004, maker_fee_bps=-0.2, **config)
    options = {k: v for k, v in env.items() if k not in ("tick_size", "lot_size", "start_min", "start_max", "num_agents")}
    r0, n = (0, 740) if config.get("guard_window_ns") else (40, 700)  # the guard starts at the kernel's first row
    vec = TradingVectorEnv(market, num_envs=1, start_min=r0, start_max=r0, **options)
    obs, info = vec.reset(seed=0)
    kernel = _core.LiveKernel(market.book.shape[1], market.features.shape[1], market.tick_size, market.lot_size, **options)
    kernel.append(market.book[r0], market.features[r0], int(market.ts[r0]), np.zeros((0, 4), np.int64))
    kernel.reset()
    assert np.array_equal(kernel.obs, obs[0])
    rng = np.random.default_rng(3)
    space = vec.single_action_space
    fills = quotes = guarded = closes = 0
    for i in range(1, n):
        if hasattr(space, "n"):
            a = int(rng.integers(space.n))
        else:
            a = np.clip(rng.normal(0, 0.7, space.shape), -1, 1).astype(np.float32)
        plan = kernel.plan(a)
        closes += plan["close"] and plan["market_lots"] != 0  # a close announced (not one already in flight)
        assert plan["close"] or not (env["actions"] == "quote" and not env["quote_flatten"] and plan["market_lots"])
        r = r0 + i
        kernel.append(market.book[r], market.features[r], int(market.ts[r]), market.records[market.starts[r - 1]:market.starts[r]])
        kernel.step(a)
        obs, _, _, _, info = vec.step(np.asarray([a]))
        out = kernel.outputs()
        assert np.array_equal(kernel.obs, obs[0]), f"step {i}"
        for f in COMPARED + ("guarded",):
            assert info[f][0] == out[f], f"step {i}: {f}"
        guarded += bool(out["guarded"]) and market.ts[r] >= market.ts[0] + 6 * env["guard_window_ns"]
        if env["actions"].startswith("quote"):
            new = [plan[s]["lots"] for s in ("bid", "ask") if plan[s]["price"] and not plan[s]["kept"]]
            assert out["quoted"] == sum(new)  # the orders the plan announced are the ones the step sent
            quotes += len(new)
        fills += len(kernel.fills())
        assert sum(f[4] for f in kernel.fills()) == abs(out["maker_filled"]) + abs(out["taker_filled"])
    assert fills > 5 and (quotes > 50 or not env["actions"].startswith("quote"))
    assert guarded > 10 or not env["guard_window_ns"]  # rows on which a trip held the guard up
    assert (closes > 0) == bool(env["max_hold_ns"])


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
