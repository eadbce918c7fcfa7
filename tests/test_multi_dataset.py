"""Issue 13, training on many datasets: one env pool over two real recordings of different instruments
(Binance spot BTCUSDT and ETHUSDT, ../shared/data, different lot sizes). Episodes never cross from one
dataset to another, datasets are drawn by their number of episode starts, seeds reproduce whatever the
thread count, the Python reference env agrees step for step, mismatched datasets get a clear error, and
`trader train --data A --data B` then `trader backtest` work for PPO, SAC and MADDPG."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from click.testing import CliRunner  # noqa: E402

from conftest import shared  # noqa: E402
from trader import _core  # noqa: E402
from trader.cli import main  # noqa: E402
from trader.data.binance import convert_files  # noqa: E402
from trader.data.dataset import write_dataset, write_index  # noqa: E402
from trader.sim import spec  # noqa: E402
from trader.sim.env import TradingVectorEnv, dataset_folders, load_market, load_markets  # noqa: E402
from trader.sim.reference import ReferenceTradingEnv  # noqa: E402

RECORDINGS = ("btcusdt_20240808.gz", "ethusdt_20240808.gz")
HORIZON = 40


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two dataset folders (60 s of BTCUSDT and of ETHUSDT spot) inside one parent folder."""
    parent = tmp_path_factory.mktemp("datasets")
    out = []
    for name in RECORDINGS:
        (events, meta), = convert_files([shared("binance_hftbacktest_raw_feed", "spot", name)], duration_s=60)
        out.append(write_dataset(parent / name.split("_")[0], events, meta))
    return out


@pytest.fixture(scope="module")
def markets(folders):
    ms = load_markets(folders)
    assert ms[0].lot_size != ms[1].lot_size  # two instruments on different grids
    return ms


def _which(market_features, obs, t):
    """Indices of the datasets whose feature row t equals the observation's market features."""
    return [i for i, f in enumerate(market_features) if t < len(f) and np.array_equal(f[t], obs[:f.shape[1]])]


def test_episodes_never_cross_a_dataset_boundary(markets):
    windows = [(5, len(m.book) - 1 - HORIZON - 60) for m in markets]  # a held-out tail per dataset
    env = TradingVectorEnv(markets, num_envs=16, seed=11, horizon=HORIZON, start_min=[w[0] for w in windows],
                           start_max=[w[1] for w in windows])
    feats = [m.features for m in markets]
    obs, info = env.reset(seed=11)
    current = [None] * env.num_envs
    rng = np.random.default_rng(0)
    starts, truncations = [[], []], 0
    new, ended = np.ones(env.num_envs, bool), np.zeros(env.num_envs, bool)
    for _ in range(4 * HORIZON):
        for e in range(env.num_envs):
            t = int(info["t"][e])
            (d,) = _which(feats, obs[e], t) if new[e] else (current[e],)
            if new[e]:  # a new episode: its start lies in that dataset's window
                assert windows[d][0] <= t <= windows[d][1]
                starts[d].append(t)
                current[e] = d
            assert np.array_equal(feats[d][t], obs[e][:feats[d].shape[1]]), "the episode left its dataset"
            assert t <= windows[d][1] + HORIZON < len(markets[d].book)
        obs, _, term, trunc, info = env.step(rng.integers(0, 3, env.num_envs))
        new, ended = ended, term | trunc  # NEXT_STEP autoreset: the step after the end resets
        truncations += int(trunc.sum())
    assert truncations >= env.num_envs and min(len(s) for s in starts) > 0


def test_datasets_are_drawn_by_their_number_of_starts(markets):
    env = TradingVectorEnv(markets, num_envs=4000, seed=5, horizon=HORIZON, start_min=0, start_max=[99, 299])
    obs, info = env.reset(seed=5)
    feats = [m.features for m in markets]
    picks = np.array([_which(feats, obs[e], int(info["t"][e])) for e in range(env.num_envs)], dtype=object)
    first = np.array([p == [0] for p in picks])
    assert all(len(p) == 1 for p in picks)
    sigma = np.sqrt(0.25 * 0.75 / env.num_envs)
    assert abs(first.mean() - 0.25) < 4 * sigma  # 100 of 400 starts are in the first dataset


def _run(markets, seed, threads, steps=3 * HORIZON):
    env = TradingVectorEnv(markets, num_envs=12, num_threads=threads, seed=seed, horizon=HORIZON)
    obs, info = env.reset(seed=seed)
    out, rng = [np.array(obs)], np.random.default_rng(1)
    for _ in range(steps):
        obs, reward, *_ = env.step(rng.integers(0, 3, env.num_envs))
        out += [np.array(obs), np.array(reward)]
    return out


def test_seeds_reproduce_whatever_the_thread_count(markets):
    one, two, other = _run(markets, 3, 1), _run(markets, 3, 2), _run(markets, 4, 1)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    assert not np.array_equal(one[0], other[0])


def test_one_dataset_from_markets_equals_the_single_dataset_pool(markets):
    """The multi-dataset entry point with one dataset steps bit for bit like the pool of before."""
    m = markets[1]
    cfg = TradingVectorEnv(m, num_envs=1, horizon=HORIZON).env_config
    entry = dict(name=m.name, book=m.book, features=m.features, ts=m.ts, records=m.records, starts=m.starts,
                 tick_size=m.tick_size, lot_size=m.lot_size, start_min=cfg["start_min"], start_max=cfg["start_max"])
    pools = [_core.EnvPool(m.book, m.features, 6, 6, 1, 21, ts=m.ts, records=m.records, starts=m.starts, **cfg),
             _core.EnvPool.from_markets([entry], 6, 6, 1, 21, **cfg)]
    rng = np.random.default_rng(2)
    for p in pools:
        p.send_reset()
    for step in range(3 * HORIZON):
        got = [[np.array(v) for v in p.recv()] for p in pools]
        for f, a, b in zip(spec.OUTPUTS, *got):
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f"step {step}: {f.name}"
        acts = rng.integers(0, 3, 6)
        for p in pools:
            p.send(acts)


def test_reference_env_matches_cpp_over_two_datasets(markets):
    cfg = dict(horizon=HORIZON, taker_fee_bps=2.0, order_latency_ns=100_000_000)
    env = TradingVectorEnv(markets, num_envs=3, seed=9, **cfg)
    full = {k: v for k, v in env.env_config.items() if k not in ("start_min", "start_max")}
    entries = [dict(name=m.name, book=m.book, features=m.features, ts=m.ts, records=None, starts=None,
                    tick_size=m.tick_size, lot_size=m.lot_size, start_min=0, start_max=-1) for m in markets]
    refs = [ReferenceTradingEnv(seed=9, env_id=i, markets=entries, **full) for i in range(3)]
    obs, info = env.reset(seed=9)
    outs = [r.reset(seed=9) for r in refs]
    for j, (o, i) in enumerate(outs):
        assert np.array_equal(obs[j], o) and info["t"][j] == i["t"]
    rng = np.random.default_rng(3)
    seen = set()
    for step in range(3 * HORIZON):
        acts = rng.integers(0, 3, 3)
        obs, reward, term, trunc, info = env.step(acts)
        for j, ref in enumerate(refs):
            if ref.needs_reset:
                o, i = ref.reset()
                r = 0.0
            else:
                o, r, _, _, i = ref.step(acts[j])
            seen.add(ref.trade_lots)  # 0.01 base: 10,000 lots of BTCUSDT, 100 of ETHUSDT
            assert np.array_equal(obs[j], o), f"step {step} env {j}"
            assert info["t"][j] == i["t"] and np.isclose(reward[j], r, rtol=1e-5, atol=1e-6), f"step {step} env {j}"
            assert np.isclose(info["equity"][j], i["equity"], rtol=1e-12), f"step {step} env {j}"
    assert len(seen) == 2, "the reference envs never visited both datasets"


def test_mismatched_depth_names_the_dataset(folders, markets):
    shallow = load_market(folders[1], depth=5)
    with pytest.raises(ValueError, match=rf"{shallow.name}: 5 book levels and 26 feature columns, but "
                                         rf"{markets[0].name} has 10 and 46"):
        TradingVectorEnv([markets[0], shallow], horizon=HORIZON)
    entries = [dict(name=m.name, book=m.book, features=m.features, ts=m.ts, records=None, starts=None,
                    tick_size=m.tick_size, lot_size=m.lot_size, start_min=0, start_max=-1)
               for m in (markets[0], shallow)]
    with pytest.raises(ValueError, match="dataset 1 has 5 levels and 26 feature columns, dataset 0 has 10 and 46"):
        _core.EnvPool.from_markets(entries, 2, 2, 1, 0, horizon=HORIZON)
    with pytest.raises(ValueError, match=rf"{shallow.name}: 5 levels and 26 feature columns"):
        ReferenceTradingEnv(markets=entries, horizon=HORIZON)
    short = dict(entries[0], name="short", start_max=len(markets[0].book) - 5)
    with pytest.raises(ValueError, match="short: start_max: episodes starting at row"):
        _core.EnvPool.from_markets([entries[0], short], 2, 2, 1, 0, horizon=HORIZON)
    with pytest.raises(ValueError, match="start_max: 3 values for 2 datasets"):
        TradingVectorEnv(markets, horizon=HORIZON, start_max=[1, 2, 3])


def test_dataset_folders_of_a_parent_and_a_collection(folders, tmp_path):
    parent = folders[0].parent
    assert dataset_folders(parent) == sorted(folders)
    write_index(parent, [f.name for f in folders])  # the parent becomes a collection in this order
    try:
        assert dataset_folders(parent) == folders
    finally:
        (parent / "index.json").unlink()
    with pytest.raises(ValueError, match="neither a dataset folder"):
        dataset_folders(tmp_path)


@pytest.mark.parametrize("algo,extra", [("ppo", ["--num-envs", "4"]), ("sac", ["--num-envs", "2"]),
                                        ("maddpg", ["--num-agents", "2", "--num-envs", "2"])])
def test_train_on_two_datasets_then_backtest_each_tail(tmp_path, folders, algo, extra):
    runner = CliRunner()
    if algo != "ppo":  # a warm-up inside the budget: train refuses runs that would never update (issue 17)
        (tmp_path / f"{algo}.yaml").write_text("learning_starts: 128\nbatch_size: 64\n")
        extra = [*extra, "--config", str(tmp_path / f"{algo}.yaml")]
    res = runner.invoke(main, ["train", "--algo", algo, "--data", str(folders[0]), "--data", str(folders[1]),
                               "--horizon", "50", "--total-timesteps", "512", *extra, "--runs-dir", str(tmp_path),
                               "--no-progress-bar", "--no-cuda", "--seed", "2"])
    assert res.exit_code == 0, res.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run)])
    assert res.exit_code == 0, res.output
    for folder in folders:
        report = json.loads((run / "backtest" / folder.name / "backtest.json").read_text())
        ctx = report["context"]
        assert ctx["data"] == str(folder) and ctx["start"] == int(0.7 * len(load_market(folder).book))
        assert "flat" in report["results"]


def test_train_with_an_encoder_on_two_datasets_then_backtest_each_tail(tmp_path, folders):
    """`trader train --encoder` embeds every dataset with the encoder (one cache file each, issue 14) and
    backtest embeds each dataset's tail with it again."""
    runner = CliRunner()
    res = runner.invoke(main, ["train-encoder", "--out", str(tmp_path / "enc"), "--model", "tcn", "--epochs", "1",
                               "--max-steps-per-epoch", "2", "--seeds", "0", "--window", "50", "--horizons", "10,20",
                               "--device", "cpu", "--no-baselines"])
    assert res.exit_code == 0, res.output
    encoder = tmp_path / "enc" / "tcn" / "best"
    res = runner.invoke(main, ["train", "--algo", "ppo", "--data", str(folders[0]), "--data", str(folders[1]),
                               "--encoder", str(encoder), "--horizon", "50", "--total-timesteps", "512",
                               "--num-envs", "4", "--out", str(tmp_path / "run"), "--no-progress-bar", "--no-cuda"])
    assert res.exit_code == 0, res.output
    cached = sorted(p.name.split("__")[0] for p in (encoder / "embeddings").glob("*.npy"))
    assert cached == sorted(folder.name for folder in folders)
    run = tmp_path / "run"
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run)])
    assert res.exit_code == 0, res.output
    for folder in folders:
        assert "flat" in json.loads((run / "backtest" / folder.name / "backtest.json").read_text())["results"]


def test_pool_reports_each_datasets_rows(markets):
    env = TradingVectorEnv(markets, num_envs=2, horizon=HORIZON)
    assert env._pool.rows == [len(m.book) for m in markets] and env._pool.has_trades
    assert TradingVectorEnv(markets[0], num_envs=1, horizon=HORIZON)._pool.rows == [len(markets[0].book)]


def test_a_recordings_mirror_image(folders):
    """load_market(mirror=True): the same rows, the book upside down about the median trade price: bids where
    asks were, at 2c - their price, with their sizes (trader.data.events.mirrored)."""
    from trader.data.dataset import load_dataset
    from trader.data.events import EventKind

    original, mirror = load_market(folders[0]), load_market(folders[0], mirror=True)
    events = load_dataset(folders[0]).events
    c = int(np.median(events["price"][(events["kind"] == EventKind.TRADE) & (events["price"] > 0)]))
    assert mirror.name == f"{folders[0]} (mirrored)" and np.array_equal(mirror.ts, original.ts)
    np.testing.assert_array_equal(mirror.book[:, :, 0], 2 * c - original.book[:, :, 2])  # bid prices
    np.testing.assert_array_equal(mirror.book[:, :, 1], original.book[:, :, 3])  # bid sizes
    np.testing.assert_array_equal(mirror.book[:, :, 2], 2 * c - original.book[:, :, 0])  # ask prices
    np.testing.assert_array_equal(mirror.book[:, :, 3], original.book[:, :, 1])
    with pytest.raises(ValueError, match="mirror: features given for the recording"):
        load_market(folders[0], mirror=True, features=original.features)


def test_train_on_a_dataset_and_its_mirror_image(tmp_path, folders):
    """`trader train --mirror` draws episodes from each dataset and its mirror image (two datasets of equal
    rows); its backtest tests the recording's own held-out tail; with --encoder it is a usage error."""
    from trader.rl import ppo
    from trader.rl.envs import make_env

    args = ppo.Args(data=[str(folders[0])], mirror=True, horizon=HORIZON, num_envs=8)
    env = make_env(args, 8, seed=0)
    rows = len(load_market(folders[0]).book)
    assert env._pool.rows == [rows, rows] and env.markets[1].name.endswith("(mirrored)")
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--algo", "ppo", "--data", str(folders[0]), "--mirror", "--horizon", "50",
                               "--total-timesteps", "512", "--num-envs", "4", "--out", str(tmp_path / "run"),
                               "--no-progress-bar", "--no-cuda"])
    assert res.exit_code == 0, res.output
    assert "\nmirror: true\n" in (tmp_path / "run" / "config.yaml").read_text()
    res = runner.invoke(main, ["backtest", "--checkpoint", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    report = json.loads(next((tmp_path / "run" / "backtest").rglob("backtest.json")).read_text())
    assert report["context"]["data"] == str(folders[0])
    res = runner.invoke(main, ["train", "--data", str(folders[0]), "--mirror", "--encoder", str(tmp_path),
                               "--out", str(tmp_path / "run2"), "--no-progress-bar", "--no-cuda"])
    assert res.exit_code == 2 and "mirror: not with --encoder" in res.output, res.output
