"""Issue 13, features that carry across instruments: feature set 2 (trader.sim.features) does not see the
unit of sizes or prices, uses no future row, reads BTC, ETH and NEXO books on one footing (real
recordings of ../shared/data); the feature set is recorded with a run, and a run saved before sets had
numbers keeps observing set 1 in backtests and on resume, whatever today's default."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from click.testing import CliRunner  # noqa: E402

from conftest import shared  # noqa: E402
from trader.cli import main  # noqa: E402
from trader.data.binance import convert_files  # noqa: E402
from trader.data.dataset import write_dataset  # noqa: E402
from trader.sim import features, load_market  # noqa: E402
from trader.sim.env import TradingVectorEnv  # noqa: E402
from trader.sim.reference import ReferenceTradingEnv  # noqa: E402
from trader.store.layout import manifest_checksum  # noqa: E402

L = 10  # levels of load_market's default depth
RECORDINGS = {"btc": ("binance_hftbacktest_raw_feed/spot/btcusdt_20240808.gz", 120),
              "eth": ("binance_hftbacktest_raw_feed/usdm/ethusdt_20240808.gz", 120),
              "nexo": ("binance_spot_nexousdt_raw_feed/nexousdt_20240723.dat.gz", 300)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    parent = tmp_path_factory.mktemp("instruments")
    out = {}
    for name, (path, seconds) in RECORDINGS.items():
        (events, meta), = convert_files([shared(*path.split("/"))], duration_s=seconds)
        out[name] = write_dataset(parent / name, events, meta)
    return out


def _sample():
    m = load_market(feature_set=1)
    return m.book, np.stack([np.arange(len(m.book)) % 7, np.arange(len(m.book)) % 5], 1).astype(np.int64)


def test_set_2_ignores_the_units_of_sizes_and_prices():
    book, flow = _sample()
    want = features.features(book, 1e-5, flow, feature_set=2)
    assert want.shape == (len(book), 4 * L + 7) and np.isfinite(want).all()
    scaled = book.copy()
    scaled[:, :, 1] *= 1000  # sizes in lots 1000 times smaller
    scaled[:, :, 3] *= 1000
    scaled[:, :, 0] *= 10  # prices in ticks 10 times smaller (bid and ask alike)
    scaled[:, :, 2] *= 10
    got = features.features(scaled, 1e-8, flow * 1000, feature_set=2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # set 1 reads sizes in base units: the same book in another lot size reads differently
    assert not np.allclose(features.book_features(scaled, 1e-5, flow), features.book_features(book, 1e-5, flow))


def test_set_2_uses_no_future_row():
    book, flow = _sample()
    full = features.scale_free_features(book, flow)
    for t in (1, 2, 50, len(book) // 2):
        np.testing.assert_array_equal(features.scale_free_features(book[:t], flow[:t]), full[:t])


def test_set_2_reads_btc_eth_and_nexo_on_one_footing(folders):
    """Median of the level-size columns per instrument: set 1 (base units) spreads them over a factor of
    70 (0.08 BTC-ish vs 6 for NEXO); set 2 keeps them within a factor of 3."""
    medians = {fs: [float(np.median(load_market(folders[n], feature_set=fs).features[:, 2 * L:4 * L]))
                    for n in RECORDINGS] for fs in (1, 2)}
    assert max(medians[1]) / min(medians[1]) > 20, medians
    assert max(medians[2]) / min(medians[2]) < 3, medians


def test_bad_feature_set_is_named():
    with pytest.raises(ValueError, match="feature_set: expected one of 1, 2, 3, got 4"):
        load_market(feature_set=4)
    with pytest.raises(ValueError, match="feature_set 3: needs rows on a time grid"):
        load_market(feature_set=3, interval_ms=0)


H = 4 * L + 7  # set 3's first history column; then per half-life of HALF_LIVES_S: trend, flow, OFI, volatility


def test_set_3_is_set_2_and_its_history_without_units_or_future_rows():
    book, flow = _sample()
    want = features.features(book, 1e-5, flow, feature_set=3, interval_s=0.1)
    assert want.shape == (len(book), H + 12) and np.isfinite(want).all()
    np.testing.assert_array_equal(want[:, :H], features.features(book, 1e-5, flow, feature_set=2))
    for t in (1, 2, 50, len(book) // 2):
        np.testing.assert_array_equal(features.features(book[:t], 1e-5, flow[:t], feature_set=3, interval_s=0.1),
                                      want[:t])
    scaled = book.copy()
    scaled[:, :, 1::2] *= 1000  # sizes in lots 1000 times smaller
    scaled[:, :, 0::2] *= 10  # prices in ticks 10 times smaller
    got = features.features(scaled, 1e-8, flow * 1000, feature_set=3, interval_s=0.1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # every column moves: none is a constant the agent cannot use
    assert (want[:, H:].std(axis=0) > 0).all()


def test_set_3_means_the_same_on_another_row_grid(folders):
    """Half-lives in seconds, not rows: NEXOUSDT on 100 ms and 500 ms grids gives the same 10 s trend and
    volatility at the same times (weights per row would stretch them 5 times on the coarser grid)."""
    fine, coarse = (load_market(folders["nexo"], feature_set=3, interval_ms=ms) for ms in (100, 500))
    at = np.searchsorted(fine.ts, coarse.ts)
    ok = (at < len(fine.ts)) & (coarse.ts > coarse.ts[0] + 60e9)  # after a minute: both means warmed up
    trend_10s, vol_10s = H + 4, H + 7
    a, b = fine.features[at[ok]], coarse.features[ok]
    assert np.corrcoef(a[:, trend_10s], b[:, trend_10s])[0, 1] > 0.9
    assert 0.8 < np.median(a[:, vol_10s]) / np.median(b[:, vol_10s]) < 1.25


def test_reference_env_agrees_on_set_2(folders):
    """The features come into the C++ env as a matrix: set 2 needs no change there, and the Python
    reference env serves the same observations step for step."""
    m = load_market(folders["nexo"], feature_set=2)
    cfg = dict(horizon=30, trade_size=100.0, max_position=1000.0)
    env = TradingVectorEnv(m, num_envs=2, seed=4, **cfg)
    full = {k: v for k, v in env.env_config.items() if k not in ("start_min", "start_max")}
    entry = dict(name=m.name, book=m.book, features=m.features, ts=m.ts, records=None, starts=None,
                 tick_size=m.tick_size, lot_size=m.lot_size, start_min=0, start_max=-1)
    refs = [ReferenceTradingEnv(seed=4, env_id=i, markets=[entry], **full) for i in range(2)]
    obs, _ = env.reset(seed=4)
    for j, ref in enumerate(refs):
        assert np.array_equal(obs[j], ref.reset(seed=4)[0])
    rng = np.random.default_rng(0)
    for step in range(60):
        acts = rng.integers(0, 3, 2)
        obs, *_ = env.step(acts)
        for j, ref in enumerate(refs):
            o = ref.reset()[0] if ref.needs_reset else ref.step(acts[j])[0]
            assert np.array_equal(obs[j], o), f"step {step} env {j}"
    assert obs.shape[1] == 4 * L + 7 + 3


def _strip_feature_set(run):
    """Make a run's checkpoint look like one saved before feature sets had numbers."""
    for manifest_path in (run / "checkpoints").glob("step_*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        del manifest["metadata"]["args"]["feature_set"]
        manifest["checksum"] = manifest_checksum(manifest)
        manifest_path.write_text(json.dumps(manifest))
    (run / "checkpoints" / "latest").unlink(missing_ok=True)  # its sha256 named the old manifest


def test_runs_record_their_feature_set_and_old_runs_keep_set_1(tmp_path, monkeypatch, restore_torch_globals):
    runner = CliRunner()
    config = tmp_path / "set2.json"
    config.write_text(json.dumps({"feature_set": 2}))
    common = ["train", "--algo", "ppo", "--total-timesteps", "512", "--num-envs", "2", "--no-cuda",
              "--no-progress-bar", "--runs-dir", str(tmp_path / "runs")]
    res = runner.invoke(main, [*common, "--config", str(config), "--seed", "1"])
    assert res.exit_code == 0, res.output
    run2 = next((tmp_path / "runs").iterdir())
    from trader.rl.policy import load

    trained = load(run2)
    assert trained.args["feature_set"] == 2 and trained.spec["obs_dim"] == 4 * L + 7 + 3
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run2), "--out", str(tmp_path / "bt2")])
    assert res.exit_code == 0, res.output

    res = runner.invoke(main, [*common, "--seed", "2"])
    assert res.exit_code == 0, res.output
    run1 = next(p for p in (tmp_path / "runs").iterdir() if p != run2)
    assert load(run1).args["feature_set"] == features.DEFAULT_SET == 1
    _strip_feature_set(run1)
    monkeypatch.setattr(features, "DEFAULT_SET", 2)  # a later default must not change what an old run observes
    assert "feature_set" not in load(run1).args
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run1), "--out", str(tmp_path / "bt1")])
    assert res.exit_code == 0, res.output
    from trader.rl.ppo import Args
    from trader.run.lifecycle import resolve_args

    assert resolve_args(Args, None, {"resume": str(run1)}).feature_set == 1


def test_train_takes_feature_set_3_by_flag_and_backtest_rebuilds_it(tmp_path, restore_torch_globals):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--feature-set", "4", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "feature_set: expected one of 1, 2, 3, got 4" in res.output, res.output
    run = tmp_path / "set3"
    res = runner.invoke(main, ["train", "--feature-set", "3", "--actions", "quote", "--total-timesteps", "512",
                               "--num-envs", "2", "--no-cuda", "--no-progress-bar", "--out", str(run)])
    assert res.exit_code == 0, res.output
    from trader.rl.policy import load

    trained = load(run)
    assert trained.args["feature_set"] == 3 and trained.spec["obs_dim"] == 4 * L + 7 + 12 + 3 + 6  # + account, quotes
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--out", str(tmp_path / "bt")])
    assert res.exit_code == 0, res.output
