"""Property tests (hypothesis) of the resting orders' queue model on real recordings (spot and USD-M
BTCUSDT from ../shared/data): for random quote sequences, queue models, exponents, latencies and
episode starts, the C++ env equals the event-level Python reference (trader.sim.reference with its
own replay of the events), and invariants hold: the position limit, fills never exceeding what was
quoted, maker fees exactly when there are maker fills, no market orders."""

from __future__ import annotations

import functools
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import shared  # noqa: E402
from trader.data import load_dataset  # noqa: E402
from trader.data.binance import convert_sequence, group_sequences  # noqa: E402
from trader.data.dataset import write_dataset  # noqa: E402
from trader.sim import TradingVectorEnv, load_market, spec  # noqa: E402
from trader.sim.reference import ReferenceTradingEnv  # noqa: E402
from trader.sim.reference_stream import market_stream  # noqa: E402

RECORDINGS = {"spot": "spot/btcusdt_20240808.gz", "usdm": "usdm/btcusdt_20240718.gz"}
STEPS = 40


@functools.lru_cache(maxsize=None)
def recording(name: str):
    path = shared("binance_hftbacktest_raw_feed", RECORDINGS[name])
    events, meta = convert_sequence(group_sequences([path])[0], duration_s=100)
    ds = load_dataset(write_dataset(tempfile.mkdtemp(prefix=f"queue_{name}_"), events, meta))
    market = load_market(ds, interval_ms=100.0)
    records, starts = market_stream(ds.events, 100_000_000)
    return market, records, starts[len(starts) - 1 - len(market.book):]


@pytest.fixture(scope="module", autouse=True)
def _data_present():
    for name in RECORDINGS:
        recording(name)


options = st.fixed_dictionaries({
    "queue_model": st.sampled_from(["power", "log", "risk_averse"]),
    "queue_power": st.floats(0.5, 4.0),
    "order_latency_ns": st.sampled_from([0, 1_000_000, 25_000_000, 150_000_000]),
    "cancel_latency_ns": st.sampled_from([0, 5_000_000, 120_000_000]),
    "quote_min_ticks": st.integers(-1, 2),
    "quote_levels": st.integers(1, 4),
    "maker_fee_bps": st.floats(-1.0, 2.0, allow_subnormal=False),  # a subnormal rate makes a fee of 0.0
    "num_agents": st.integers(1, 2),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(RECORDINGS)), opts=options, start=st.floats(0.0, 1.0), data=st.data())
def test_queue_model_matches_event_level_reference(name, opts, start, data):
    market, records, starts = recording(name)
    K = opts["num_agents"]
    first = int(start * (len(market.book) - STEPS - 2))
    env = TradingVectorEnv(market, num_envs=1, seed=1, actions="quote", trade_size=0.002, max_position=0.004,
                           horizon=STEPS, start_min=first, start_max=first, **opts)
    ref = ReferenceTradingEnv(market.book, market.features, seed=1, ts=market.ts, records=records, starts=starts,
                              **env.env_config)
    n = env.single_action_space.n if K == 1 else int(env.single_action_space.nvec[0])
    plan = data.draw(st.lists(st.integers(0, n - 1), min_size=STEPS, max_size=STEPS))
    env.reset(seed=1)
    ref.reset(seed=1)
    lot = market.lot_size
    max_lots = round(0.004 / lot)
    quoted = np.zeros(K, dtype=np.int64)
    maker = np.zeros(K, dtype=np.int64)
    for step in range(STEPS):
        a = plan[step - step % 3]  # hold each action 3 steps: re-quotes at unchanged prices keep orders
        act = np.full((1,) if K == 1 else (1, K), a, dtype=np.int64)
        obs, reward, _, _, info = env.step(act)
        r_obs, r_reward, _, _, r_info = ref.step(act[0])
        where = f"{name} {opts} start {first} step {step}"
        np.testing.assert_array_equal(obs[0], r_obs, err_msg=where)
        for f in spec.OUTPUTS:
            if f.per_agent and f.name not in ("obs", "reward"):
                np.testing.assert_allclose(np.reshape(info[f.name][0], K), np.reshape(r_info[f.name], K),
                                           rtol=1e-12, err_msg=f"{where}: {f.name}")
        pos = np.reshape(info["position"][0], K)
        quoted += np.reshape(info["quoted"][0], K)
        maker += np.reshape(info["maker_filled"][0], K)
        assert (np.abs(pos) <= max_lots).all(), where
        assert (maker <= quoted).all(), where
        assert (np.reshape(info["taker_filled"][0], K) == 0).all(), where  # no flatten: no market orders
    fees = np.reshape(info["maker_fees"][0], K)
    assert ((fees == 0) == ((maker == 0) | (opts["maker_fee_bps"] == 0))).all()
