"""The main job through the CLI: train on the bundled sample, then backtest on its held-out rows."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trader.cli import main


def test_train_then_backtest_on_the_sample(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--algo", "ppo", "--total-timesteps", "4096", "--num-envs", "4",
                               "--runs-dir", str(tmp_path), "--no-progress-bar", "--seed", "3"])
    assert res.exit_code == 0, res.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert run.name.startswith("trader__ppo__3__")
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run)])
    assert res.exit_code == 0, res.output
    report = json.loads((run / "backtest" / "backtest.json").read_text())
    assert set(report["results"]) == {"ppo", "buy_and_hold", "flat", "order_imbalance"}
    ctx = report["context"]
    assert ctx["train_fraction"] == 0.7 and ctx["start"] > 0 and ctx["steps"] > 100
    assert report["results"]["flat"]["trades"] == 0
    assert (run / "backtest" / "equity.png").is_file()


def test_backtest_refuses_a_non_trader_run(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--algo", "ppo", "--env", "CartPole-v1", "--total-timesteps", "512",
                               "--num-envs", "2", "--runs-dir", str(tmp_path), "--no-progress-bar"])
    assert res.exit_code == 0, res.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run)])
    assert res.exit_code != 0 and "not on the trader env" in res.output


@pytest.mark.parametrize("algo,extra", [("ppo", []), ("maddpg", ["--num-agents", "2"])])
def test_quote_agents_train_then_backtest_next_to_market_makers(tmp_path, algo, extra):
    """Issue 11: `trader train --actions quote` (PPO; MADDPG with two quoting agents in one book), then
    `trader backtest` with the fixed-spread and Avellaneda-Stoikov baselines in the report."""
    runner = CliRunner()
    if algo == "maddpg":  # its default warm-up (25,600 steps) is past this budget: train refuses that (issue 17)
        (tmp_path / "maddpg.yaml").write_text("learning_starts: 1024\nbatch_size: 256\n")
        extra = [*extra, "--config", str(tmp_path / "maddpg.yaml")]
    res = runner.invoke(main, ["train", "--algo", algo, "--actions", "quote", "--maker-fee-bps", "-0.5",
                               "--queue-model", "power", "--total-timesteps", "2048", *extra,
                               "--runs-dir", str(tmp_path), "--no-progress-bar"])
    assert res.exit_code == 0, res.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run)])
    assert res.exit_code == 0, res.output
    results = json.loads((run / "backtest" / "backtest.json").read_text())["results"]
    assert {"fixed_spread", "avellaneda_stoikov", "flat"} <= set(results)
    agents = [k for k in results if k.startswith(algo)]
    assert len(agents) == (2 if algo == "maddpg" else 1)
    if algo == "ppo":  # the move guard set at backtest time for a run trained without it (every strategy runs
        # under it): 20 s windows, armed 120 s into the 180 s sample, tripping at half a standard deviation
        res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--guard-window-ms", "20000",
                                   "--guard-sigmas", "0.5", "--guard-hold-ms", "5000", "--out", str(tmp_path / "guarded")])
        assert res.exit_code == 0, res.output
        assert "move guard: 20 s windows, 0.5 sigmas" in (tmp_path / "guarded" / "backtest.md").read_text()
        guarded = json.loads((tmp_path / "guarded" / "backtest.json").read_text())["results"]
        for name in ("fixed_spread", "order_imbalance"):  # fewer orders get through
            assert 0 < guarded[name]["trades"] < results[name]["trades"], name
        # a position cap of one trade size over the run's limit: no strategy holds more than one quote's size
        res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--position-cap-trades", "1",
                                   "--out", str(tmp_path / "capped")])
        assert res.exit_code == 0, res.output
        assert "position cap 1 trade size(s)" in (tmp_path / "capped" / "backtest.md").read_text()
        capped = json.loads((tmp_path / "capped" / "backtest.json").read_text())["results"]
        from trader.backtest.engine import env_config_from_run
        from trader.rl.policy import load
        from trader.sim import spec

        size = {**spec.defaults(), **env_config_from_run(load(str(run)).args)}["trade_size"]
        held = [r["fixed_spread"]["max_abs_inventory_base"] for r in (results, capped)]
        assert held[0] > size and held[1] == pytest.approx(size), (held, size)  # it quotes one size a side
        # positions closed 2 s after the last flat (max_hold_ns, session 26): the quoting baseline, which never sends a
        # market order of its own, now pays taker fees for the closes
        res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--max-hold-ms", "2000",
                                   "--out", str(tmp_path / "held")])
        assert res.exit_code == 0, res.output
        assert "positions closed 2 s after the last flat" in (tmp_path / "held" / "backtest.md").read_text()
        held_2s = json.loads((tmp_path / "held" / "backtest.json").read_text())["results"]
        assert results["fixed_spread"]["taker_volume_base"] == 0 < held_2s["fixed_spread"]["taker_volume_base"]
        # a window the sample is too short to arm: every opening order would be held back
        res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--guard-window-ms", "600000"])
        assert res.exit_code == 2 and "--guard-window-ms: the move guard arms after six windows of rows (3600 s), " \
            "but the data spans" in res.output, res.output
        # the guard barring only the position against the move (session 31), named in the report
        res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--guard-window-ms", "20000", "--guard-sigmas",
                                   "0.5", "--guard-hold-ms", "5000", "--guard-sides", "against_move",
                                   "--out", str(tmp_path / "against")])
        assert res.exit_code == 0, res.output
        assert "barring only the position against the move" in (tmp_path / "against" / "backtest.md").read_text()
        # without a guard (this run trained without one) no side would be barred: refused, naming both flags
        res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--guard-sides", "against_move"])
        assert res.exit_code == 2 and "--guard-sides / --guard-window-ms: expected a window > 0 for 'against_move'" \
            in res.output, res.output
