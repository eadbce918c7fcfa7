"""Issue 13, sizes that carry across instruments: trade_notional / max_position_notional (quote currency)
become lots per dataset at the mid of its first row, in the C++ env and the Python reference env alike,
on real BTCUSDT and NEXOUSDT recordings of ../shared/data in one pool; they exclude the base-unit sizes
with a clear error; backtests value the position limit from them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from click.testing import CliRunner  # noqa: E402

from conftest import shared  # noqa: E402
from trader.backtest.engine import run_backtest  # noqa: E402
from trader.cli import main  # noqa: E402
from trader.data.binance import convert_files  # noqa: E402
from trader.data.dataset import write_dataset  # noqa: E402
from trader.sim import spec  # noqa: E402
from trader.sim.env import TradingVectorEnv, load_markets  # noqa: E402
from trader.sim.reference import ReferenceTradingEnv  # noqa: E402

NOTIONAL = dict(trade_notional=50.0, max_position_notional=500.0)  # USDT
HORIZON = 30


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    parent = tmp_path_factory.mktemp("instruments")
    out = []
    for name, path, seconds in (("btc", ("binance_hftbacktest_raw_feed", "spot", "btcusdt_20240808.gz"), 60),
                                ("nexo", ("binance_spot_nexousdt_raw_feed", "nexousdt_20240723.dat.gz"), 300)):
        (events, meta), = convert_files([shared(*path)], duration_s=seconds)
        out.append(write_dataset(parent / name, events, meta))
    return out


@pytest.fixture(scope="module")
def markets(folders):
    return load_markets(folders)


def _expected_lots(market) -> tuple[int, int]:
    price = 0.5 * (market.book[0, 0, 0] + market.book[0, 0, 2]) * market.tick_size
    return round(50.0 / (price * market.lot_size)), round(500.0 / (price * market.lot_size))


def test_one_notional_is_each_instrument_s_own_lots(markets):
    btc, nexo = (_expected_lots(m) for m in markets)
    assert btc[0] > 50 and nexo[0] > 50 and btc != nexo  # ~0.0008 BTC and ~50 NEXO: different lots
    for m, want in zip(markets, (btc, nexo)):
        ref = spec.reference_price(m.book, m.tick_size)
        assert spec.size_lots(spec.check_config(**NOTIONAL), m.lot_size, ref) == want
        # buy once: the position is one order of 50 USDT in this instrument's lots
        env = TradingVectorEnv(m, num_envs=1, seed=0, horizon=HORIZON, **NOTIONAL)
        env.reset(seed=0)
        env.step(np.array([1]))
        _, _, _, _, info = env.step(np.array([0]))
        assert int(info["position"][0]) == want[0]
        assert abs(info["position"][0] * m.lot_size * ref - 50.0) < 50.0 * 0.02
        result = run_backtest(m, lambda obs, info: np.array([1]), "buy", start=0, end=len(m.book) - 1, **NOTIONAL)
        assert result.max_position_lots == want[1] and abs(result.max_notional - 500.0) < 500.0 * 0.02
        assert int(np.abs(result.position).max()) == want[1]


def test_reference_env_agrees_across_instruments(markets):
    env = TradingVectorEnv(markets, num_envs=3, seed=5, horizon=HORIZON, **NOTIONAL)
    full = {k: v for k, v in env.env_config.items() if k not in ("start_min", "start_max")}
    entries = [dict(name=m.name, book=m.book, features=m.features, ts=m.ts, records=None, starts=None,
                    tick_size=m.tick_size, lot_size=m.lot_size, start_min=0, start_max=-1) for m in markets]
    refs = [ReferenceTradingEnv(seed=5, env_id=i, markets=entries, **full) for i in range(3)]
    obs, _ = env.reset(seed=5)
    for j, ref in enumerate(refs):
        assert np.array_equal(obs[j], ref.reset(seed=5)[0])
    rng = np.random.default_rng(1)
    seen = set()
    for step in range(4 * HORIZON):
        acts = rng.integers(0, 3, 3)
        obs, reward, *_ , info = env.step(acts)
        for j, ref in enumerate(refs):
            o, r = (ref.reset()[0], 0.0) if ref.needs_reset else ref.step(acts[j])[:2]
            seen.add(ref.trade_lots)
            assert np.array_equal(obs[j], o), f"step {step} env {j}"
            assert reward[j] == np.float32(r)
    assert seen == {_expected_lots(m)[0] for m in markets}


def test_sizes_in_base_and_in_quote_exclude_each_other():
    with pytest.raises(ValueError, match="trade_notional / max_position_notional: expected both > 0"):
        spec.check_config(trade_notional=50.0)
    with pytest.raises(ValueError, match="trade_size / trade_notional: expected sizes in base units .* not both"):
        spec.check_config(trade_size=0.02, **NOTIONAL)
    with pytest.raises(ValueError, match="max_position_notional: expected >= trade_notional"):
        spec.check_config(trade_notional=50.0, max_position_notional=10.0)
    with pytest.raises(ValueError, match="trade_notional: expected a finite value >= 0"):
        spec.check_config(trade_notional=-1.0, max_position_notional=10.0)
    # in quote currency the base-unit sizes are not checked against the lot (a lot of 1 base is fine)
    assert spec.check_config(lot_size=1.0, **NOTIONAL)["trade_notional"] == 50.0


def test_notional_below_one_lot_names_the_dataset(markets):
    with pytest.raises(ValueError, match=r"btc: trade_notional: expected at least one lot \(0.000001 base = 0.06"):
        TradingVectorEnv(markets, num_envs=1, horizon=HORIZON, trade_notional=0.001, max_position_notional=1.0)
    entries = [dict(name=m.name, book=m.book, features=m.features, ts=m.ts, records=None, starts=None,
                    tick_size=m.tick_size, lot_size=m.lot_size, start_min=0, start_max=-1) for m in markets]
    cfg = spec.check_config(horizon=HORIZON, trade_notional=0.001, max_position_notional=1.0)
    with pytest.raises(ValueError, match="btc: trade_notional: expected at least one lot"):
        ReferenceTradingEnv(seed=0, markets=entries, **{k: v for k, v in cfg.items()
                                                        if k not in ("start_min", "start_max")})


def test_cli_flags(tmp_path, folders, restore_torch_globals):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--data", str(folders[0]), "--trade-size", "0.02", "--trade-notional", "50",
                               "--max-position-notional", "500", "--total-timesteps", "64", "--no-cuda"])
    assert res.exit_code != 0 and "--trade-size / --trade-notional: expected sizes in base units" in res.output
    res = runner.invoke(main, ["train", "--algo", "ppo", "--data", str(folders[0]), "--data", str(folders[1]),
                               "--trade-notional", "50", "--max-position-notional", "500", "--horizon", "30",
                               "--interval-ms", "250",  # NEXOUSDT's book updates every ~200 ms
                               "--total-timesteps", "256", "--num-envs", "2", "--no-cuda", "--no-progress-bar",
                               "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    run = next((tmp_path / "runs").iterdir())
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--data", str(folders[1]),
                               "--out", str(tmp_path / "bt")])
    assert res.exit_code == 0, res.output
