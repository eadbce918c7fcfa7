"""Encoder to agent: `trader train --encoder RUN/MODEL` observes the encoder's embeddings (cached beside
it under the checkpoint's hash); `trader backtest` uses the same encoder by itself; another encoder or
another time grid is refused with a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from trader.cli import main
from trader.rl.policy import load
from trader.run.checkpoints import load_checkpoint


def _encoder(tmp_path, *extra):
    out = tmp_path / "enc"
    r = CliRunner().invoke(main, ["train-encoder", "--out", str(out), "--model", "tcn", "--epochs", "1",
                                  "--max-steps-per-epoch", "2", "--seeds", "0", "--window", "50", "--horizons",
                                  "10,20", "--device", "cpu", "--no-baselines", *extra])
    assert r.exit_code == 0, r.output
    return out / "tcn" / "best"


def _train(tmp_path, encoder):
    return CliRunner().invoke(main, ["train", "--algo", "ppo", "--total-timesteps", "1024", "--num-envs", "2",
                                     "--runs-dir", str(tmp_path / "runs"), "--no-progress-bar", "--no-cuda",
                                     "--encoder", str(encoder)])


def test_train_with_an_encoder_then_backtest(tmp_path):
    from trader.nn.embed import checkpoint_sha256

    encoder = _encoder(tmp_path)
    r = _train(tmp_path, encoder)
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "runs").iterdir()
    meta = load_checkpoint(run, state=False).metadata
    sha = checkpoint_sha256(encoder)
    assert meta["args"]["encoder"] == str(encoder) and meta["args"]["encoder_sha256"] == sha
    dim = json.loads((encoder / "config.json").read_text())["train"]["embedding_dim"]
    assert load(run).spec["obs_dim"] == dim + 3  # embedding + account features
    (cached,) = (encoder / "embeddings").glob(f"*__{sha[:16]}.npy")
    emb = np.load(cached)
    assert emb.shape[1] == dim and np.isfinite(emb).all()

    r = CliRunner().invoke(main, ["backtest", "--checkpoint", str(run)])
    assert r.exit_code == 0, r.output
    report = json.loads((run / "backtest" / "backtest.json").read_text())
    assert set(report["results"]) == {"ppo", "buy_and_hold", "flat", "order_imbalance"}

    config = json.loads((encoder / "config.json").read_text())  # the encoder changes after training
    config["window"] = 51
    (encoder / "config.json").write_text(json.dumps(config))
    r = CliRunner().invoke(main, ["backtest", "--checkpoint", str(run)])
    assert r.exit_code == 2 and "its files changed since the agent was trained" in r.output


def test_an_encoder_on_another_time_grid_is_refused(tmp_path):
    encoder = _encoder(tmp_path, "--interval-ms", "200")
    r = _train(tmp_path, encoder)
    assert r.exit_code != 0
    assert "trained on rows every 200 ms; the trader env samples every 100 ms" in r.output


def test_encoder_market_refuses_a_market_object():
    from trader.rl.policy import encoder_market
    from trader.sim import load_market

    market = load_market()
    with pytest.raises(ValueError, match="give the data as dataset folders, not Markets"):
        encoder_market({"data": market, "encoder": "x", "encoder_sha256": None}, market)


def test_the_skip_encoder_on_trend_inputs_drives_the_agent(tmp_path):
    """Ours as measured in benchmarks/README.md: the regression skip's logits (3 per horizon) follow the
    TCN's embedding in what the agent observes."""
    encoder = _encoder(tmp_path, "--inputs", "of+ofi+trend", "--skip")
    config = json.loads((encoder / "config.json").read_text())
    assert config["inputs"] == "of+ofi+trend" and config["train"]["skip"] and config["train"]["balance"]
    r = _train(tmp_path, encoder)
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "runs").iterdir()
    assert load(run).spec["obs_dim"] == config["train"]["embedding_dim"] + 3 * 2 + 3  # + logits of 2 horizons
    r = CliRunner().invoke(main, ["backtest", "--checkpoint", str(run)])
    assert r.exit_code == 0, r.output
