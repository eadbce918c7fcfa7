"""The env's options are declared once (cpp/env/spec.h): the learner arguments, the config keys and the
flags of `trader train` and `trader backtest` are generated from that table (issue 11)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from trader.cli import main
from trader.rl import maddpg, ppo, sac
from trader.rl.args import CommonArgs
from trader.rl.cli import train
from trader.rl.policy import load
from trader.sim import spec
from trader.sim.flags import NOT_FLAGS, flag_message, flag_name, pop_env_values


def test_every_env_option_is_a_learner_argument_and_a_train_flag():
    flags = {opt for p in train.params for opt in p.opts}
    for o in spec.options():
        if o.name in NOT_FLAGS:
            assert o.name not in {f.name for f in dataclasses.fields(ppo.Args)}
            continue
        assert flag_name(o) in flags, o.name
        for Args in (ppo.Args, sac.Args):
            assert getattr(Args(), o.name) == o.default, (Args, o.name)
    assert maddpg.Args().num_agents == 2  # MADDPG's own default: several agents in one book
    assert flag_name(next(o for o in spec.options() if o.name == "order_latency_ns")) == "--order-latency-ms"


def test_ms_flags_become_ns_options_and_errors_name_the_flag():
    params = {"order_latency_ms": 2.5, "taker_fee_bps": None, "queue_model": "log", "seed": 3}
    assert pop_env_values(params) == {"order_latency_ns": 2_500_000, "queue_model": "log"}
    assert params == {"seed": 3}  # the env flags are taken out, the rest stays
    assert flag_message("taker_fee_bps: expected a finite value >= 0 bps").startswith("--taker-fee-bps: expected")
    assert "--order-latency-ms" in flag_message("order_latency_ns: expected >= 0 ns")
    assert flag_message("horizon is odd") == "horizon is odd"


def test_saved_arguments_of_older_runs_are_translated():
    old = {"fee_bps": 2.0, "continuous": True, "actions": None, "order_latency_ms": 1.5, "latency_steps": 0}
    assert CommonArgs.migrate(old) == {"taker_fee_bps": 2.0, "actions": "continuous",
                                       "order_latency_ns": 1_500_000, "cancel_latency_ns": 1_500_000}


@pytest.mark.parametrize("argv, flag", [
    (["--taker-fee-bps", "nan"], "--taker-fee-bps"),
    (["--maker-fee-bps", "inf"], "--maker-fee-bps"),
    (["--order-latency-ms", "-1"], "--order-latency-ms"),
    (["--queue-model", "fifo"], "--queue-model"),
    (["--actions", "quote", "--quote-levels", "40"], "--quote-min-ticks / --quote-levels"),
])
def test_bad_env_flags_are_usage_errors_naming_the_flag(tmp_path, argv, flag):
    res = CliRunner().invoke(main, ["train", "--total-timesteps", "512", "--num-envs", "2", "--runs-dir",
                                    str(tmp_path), "--no-progress-bar", *argv])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and flag.split(" / ")[0] in res.output, res.output


def test_train_flags_reach_the_env_and_backtest_overrides_them(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--algo", "ppo", "--actions", "quote", "--total-timesteps", "1024",
                               "--num-envs", "2", "--runs-dir", str(tmp_path), "--no-progress-bar",
                               "--maker-fee-bps", "-0.5", "--order-latency-ms", "3", "--queue-model", "log"])
    assert res.exit_code == 0, res.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    args = load(str(run)).args
    assert (args["maker_fee_bps"], args["order_latency_ns"], args["cancel_latency_ns"], args["queue_model"]) == (
        -0.5, 3_000_000, 0, "log")
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--taker-fee-bps", "4", "--queue-model", "power"])
    assert res.exit_code == 0, res.output
    ctx = json.loads((run / "backtest" / "backtest.json").read_text())["context"]
    assert ctx["taker_fee_bps"] == 4 and ctx["maker_fee_bps"] == -0.5 and ctx["order_latency_ns"] == 3_000_000
    res = runner.invoke(main, ["backtest", "--checkpoint", str(run), "--taker-fee-bps", "-1"])
    assert res.exit_code == 2 and "--taker-fee-bps" in res.output and "Traceback" not in res.output, res.output
