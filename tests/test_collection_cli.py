"""Issue 15's last gap (issue 13's training on many datasets from the command line): `trader-sim convert
DIR_OF_DAILY_FILES` writes a collection (index.json over its sequences), `trader train --data COLLECTION`
trains across every sequence of it (episodes drawn in each, never across a gap) and `trader backtest`
reports each sequence's held-out rows on its own. Real Binance USD-M BTCUSDT files of ../shared/data."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from click.testing import CliRunner  # noqa: E402

from conftest import shared  # noqa: E402
from trader.cli import main as trader  # noqa: E402
from trader.rl.envs import make_env, training_markets  # noqa: E402
from trader.rl.policy import load  # noqa: E402
from trader.sim.cli import main as trader_sim  # noqa: E402


def test_train_on_a_collection_then_backtest_each_sequence(tmp_path, restore_torch_globals):
    src = shared("binance_hftbacktest_raw_feed", "usdm")
    days = tmp_path / "days"
    days.mkdir()
    for name in ("btcusdt_20240718.gz", "btcusdt_20240719.gz", "btcusdt_20240808.gz"):
        (days / name).write_bytes((src / name).read_bytes())
    collection = tmp_path / "btc"
    runner = CliRunner()
    res = runner.invoke(trader_sim, ["convert", str(days), "-o", str(collection), "--duration", "120"])
    assert res.exit_code == 0, res.output
    sequences = [d["name"] for d in json.loads((collection / "index.json").read_text())["datasets"]]
    assert len(sequences) == 2  # 07-18 + 07-19 joined, 08-08 on its own (a REST snapshot starts it)

    res = runner.invoke(trader, ["train", "--algo", "ppo", "--data", str(collection), "--horizon", "50",
                                 "--total-timesteps", "1024", "--num-envs", "4", "--no-cuda", "--no-progress-bar",
                                 "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    run = next((tmp_path / "runs").iterdir())
    args = load(run).args
    assert args["data"] == [str(collection)]
    # the run's env: one pool over both sequences, each with its own episode window
    markets = training_markets(SimpleNamespace(data=args["data"], feature_set=args["feature_set"],
                                               interval_ms=args["interval_ms"]))
    assert [m.name.rsplit("/", 1)[-1] for m in markets] == sequences
    env = make_env(SimpleNamespace(**args), 8, 0)
    D = markets[0].features.shape[1]
    seen = set()
    obs, info = env.reset(seed=0)
    for _ in range(200):  # rows of both sequences come up (episodes are drawn in each)
        for j, t in enumerate(info["t"]):
            seen.update(m.name for m in markets if t < len(m.book) and np.array_equal(m.features[t], obs[j, :D]))
        obs, *_, info = env.step(env.action_space.sample())
    assert seen == {m.name for m in markets}

    res = runner.invoke(trader, ["backtest", "--checkpoint", str(run)])
    assert res.exit_code == 0, res.output
    for name in sequences:
        report = json.loads((run / "backtest" / name / "backtest.json").read_text())
        assert report["context"]["data"].endswith(name), report["context"]["data"]
        assert set(report["results"]) >= {"ppo", "flat"}
