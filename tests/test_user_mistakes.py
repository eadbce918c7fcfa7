"""Issue 17: every user mistake gets a clear error. A table of wrong invocations runs through the real
console entry points (`trader.cli:main`, `trader.sim.cli:main`, in click's CliRunner) and each must
exit non-zero, print no traceback and name the flag or file at fault. Beside it: the exit codes of
trader.errors, `--version` on both commands, whole command summaries in `trader --help`, and
`trader backtest` falling back from a corrupt latest checkpoint, saying which step it used."""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from trader import errors  # noqa: E402
from trader.cli import main as trader_main  # noqa: E402
from trader.sim.cli import main as sim_main  # noqa: E402

FAST = ["--no-cuda", "--no-progress-bar", "--no-track-tensorboard"]


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory) -> Path:
    """A real PPO run on the bundled sample with checkpoints at steps 128, 256 and 384."""
    run = tmp_path_factory.mktemp("runs") / "agent"
    res = CliRunner().invoke(trader_main, ["train", "--total-timesteps", "384", "--num-envs", "1", "--horizon", "50",
                                           "--save-freq", "128", "-o", str(run), *FAST])
    assert res.exit_code == 0, res.output
    return run


def _corrupt_copy(agent_run: Path, tmp_path: Path) -> Path:
    """A copy of the agent run whose latest checkpoint (step 384) has a flipped byte in its weights."""
    run = tmp_path / agent_run.name
    shutil.copytree(agent_run, run)
    weights = run / "checkpoints" / "step_000000000384" / "weights" / "agent.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    return run


def _cases(tmp: Path, agent_run: Path) -> tuple[list[tuple[object, list[str], str]], dict]:
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("seed: [1\n  bad: : :\n")
    not_empty = tmp / "not_empty"
    not_empty.mkdir()
    (not_empty / "notes.txt").write_text("mine")
    keys = {"TRADER_API_KEY": None, "TRADER_API_SECRET": None}
    table = tmp / "book.csv"
    table.write_text("time,bid_price_0,bid_size_0,ask_price_0,ask_size_0\n1,1,1,2,1\n")
    train = ["train", "-o", str(tmp / "runs" / "run"), *FAST]
    cases = [
        (trader_main, [*train, "--num-envs", "0"], "--num-envs"),
        (trader_main, [*train, "--env", "Foo-v9"], "--env"),
        (trader_main, [*train, "--config", str(bad_yaml)], str(bad_yaml)),
        (trader_main, [*train, "--config", str(tmp / "missing.yaml")], "--config"),
        (trader_main, [*train, "--total-timesteps", "0"], "--total-timesteps"),
        (trader_main, [*train, "--total-timesteps", "-100"], "--total-timesteps"),
        (trader_main, [*train, "--total-timesteps", "500"], "--total-timesteps"),  # below one PPO update (512)
        (trader_main, [*train, "--algo", "sac", "--total-timesteps", "500"], "--total-timesteps"),
        (trader_main, [*train, "--algo", "maddpg", "--total-timesteps", "500"], "--total-timesteps"),
        (trader_main, [*train, "--horizon", "0"], "--horizon"),
        (trader_main, [*train, "--taker-fee-bps", "nan"], "--taker-fee-bps"),
        (trader_main, [*train, "--queue-model", "fifo"], "--queue-model"),
        (trader_main, [*train, "--data", str(tmp / "no_such_dataset")], "--data"),
        (trader_main, ["train-encoder", "--window", "0", "--out", str(tmp / "enc")], "--window"),
        (trader_main, ["train-encoder", "--device", "bogus", "--out", str(tmp / "enc")], "--device"),
        (trader_main, ["embed", "--checkpoint", str(agent_run), "--out", str(tmp / "e.npy")], "--checkpoint"),
        (trader_main, ["backtest", "--checkpoint", str(tmp / "no_such_run")], "--checkpoint"),
        (trader_main, ["backtest", "--checkpoint", str(agent_run), "--taker-fee-bps", "-1"], "--taker-fee-bps"),
        (trader_main, ["record", "--base-url", "http://127.0.0.1:9", "--duration", "1", "-o", str(tmp / "rec")],
         "http://127.0.0.1:9"),
        (trader_main, [*train, "--interval-ms", "0"], "--interval-ms"),
        (trader_main, ["train", "-o", str(not_empty), "--total-timesteps", "512", *FAST], "--out"),
        (trader_main, ["train-encoder", "--resume", str(tmp / "no_run_here")], "--resume"),
        (trader_main, ["train-encoder", "--resume", str(agent_run), "-o", str(tmp / "enc")], "--resume"),
        (trader_main, ["embed", "--checkpoint", str(tmp / "no_such_encoder")], "--checkpoint"),
        (trader_main, ["evaluate", "--folds", "0"], "--folds"),
        (trader_main, ["record", "--duration", "1"], "-o/--out"),
        (trader_main, ["live", "--checkpoint", str(tmp / "no_such_run"), "--state-dir", str(tmp / "state")],
         str(tmp / "no_such_run")),
        (trader_main, ["live", "--taker-fee-bps", "-1"], "--taker-fee-bps"),
        (trader_main, ["live", "--connect-timeout", "0"], "--connect-timeout"),
        (trader_main, ["live", "--real", "--keys-file", str(tmp / "no_keys.json"), "--state-dir", str(tmp / "state")],
         str(tmp / "no_keys.json")),
        (trader_main, ["no-such-command"], "no-such-command"),
        (sim_main, ["info", str(tmp / "no_such_dataset")], "no_such_dataset"),
        (sim_main, ["convert", str(bad_yaml)], "-o/--out"),
        (sim_main, ["serve", "--rate-limit", "many"], "--rate-limit"),
        (sim_main, ["convert", str(table), "--format", "csv", "--csv-ts-column", "ts", "-o", str(tmp / "cv")],
         "--csv-ts-column"),
    ]
    if not torch.cuda.is_available():
        cases.append((trader_main, ["train-encoder", "--device", "cuda", "--out", str(tmp / "enc")], "--device"))
    return cases, keys


def test_wrong_invocations_fail_cleanly_naming_the_flag_or_file(tmp_path, agent_run):
    failures = []
    cases, keys = _cases(tmp_path, agent_run)
    for command, argv, named in cases:
        res = CliRunner().invoke(command, argv, env=keys)
        out = res.output
        escaped = res.exception is not None and not isinstance(res.exception, SystemExit)  # a traceback in a shell
        if res.exit_code == 0 or escaped or "Traceback" in out or named not in out:
            failures.append(f"{' '.join(argv)}: exit {res.exit_code}, {named!r} named: {named in out}\n{out[-800:]}")
    assert not failures, "\n\n".join(failures)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "enc").exists()  # refused before any run folder
    assert [p.name for p in (tmp_path / "not_empty").iterdir()] == ["notes.txt"]


def test_exit_codes_of_the_error_handler():
    @click.group(cls=errors.Group)
    def cli():
        pass

    @cli.command()
    @click.argument("what")
    def fail(what):
        if what == "input":
            raise ValueError("--thing: expected a number")
        if what == "interrupt":
            raise KeyboardInterrupt
        if what == "network":
            raise ConnectionError("connection refused")
        raise KeyError("a bug")

    codes = {w: CliRunner().invoke(cli, ["fail", w]) for w in ("input", "interrupt", "network", "bug")}
    assert codes["input"].exit_code == errors.USAGE and "Error: --thing: expected a number" in codes["input"].output
    assert codes["interrupt"].exit_code == errors.INTERRUPTED
    assert codes["network"].exit_code == errors.FAILED and "could not be reached" in codes["network"].output
    assert codes["bug"].exit_code == errors.FAILED
    assert "Traceback" in codes["bug"].output and "This is a bug in trader" in codes["bug"].output


def test_version_on_both_commands_and_whole_summaries_in_help():
    for command in (trader_main, sim_main):
        res = CliRunner().invoke(command, ["--version"])
        assert res.exit_code == 0 and "version" in res.output
    res = CliRunner().invoke(trader_main, ["--help"])
    commands = res.output.split("Commands:")[1]
    assert res.exit_code == 0 and "..." not in commands
    assert "backtest.md, backtest.json and equity.png" in " ".join(res.output.split())


def test_backtest_falls_back_from_a_corrupt_latest_checkpoint_and_says_which(tmp_path, agent_run):
    run = _corrupt_copy(agent_run, tmp_path)
    res = CliRunner().invoke(trader_main, ["backtest", "--checkpoint", str(run), "--out", str(tmp_path / "bt")])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert f"checkpoint {run}/checkpoints/step_000000000256" in res.output
    context = json.loads((tmp_path / "bt" / "backtest.json").read_text())["context"]
    assert context["checkpoint"] == str(run) and context["checkpoint_read"].endswith("step_000000000256")


def test_convert_refuses_a_dataset_of_another_symbol_and_drops_stale_embeddings(tmp_path):
    from conftest import shared

    raw = shared("binance_hftbacktest_raw_feed", "spot")
    out = tmp_path / "ds"
    assert CliRunner().invoke(sim_main, ["convert", str(raw / "btcusdt_20240808.gz"), "-o", str(out)]).exit_code == 0
    (out / "embeddings.npy").write_bytes(b"of the old events")
    before = (out / "events.npy").read_bytes()
    res = CliRunner().invoke(sim_main, ["convert", str(raw / "ethusdt_20240808.gz"), "-o", str(out)])
    assert res.exit_code == errors.USAGE and "Traceback" not in res.output
    assert "-o/--out" in res.output and "BTCUSDT" in res.output and "ETHUSDT" in res.output
    assert (out / "events.npy").read_bytes() == before  # nothing replaced
    res = CliRunner().invoke(sim_main, ["convert", str(raw / "btcusdt_20240808.gz"), "-o", str(out)])
    assert res.exit_code == 0 and not (out / "embeddings.npy").exists()


def _blackhole() -> socket.socket:
    """A local port that accepts connections (the kernel's backlog) and never answers a request."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("where", ["refused", "blackhole"])
def test_live_without_the_exchange_fails_within_the_connect_timeout(tmp_path, where):
    pytest.importorskip("ccxt")
    hole = _blackhole() if where == "blackhole" else None
    url = f"http://127.0.0.1:{hole.getsockname()[1] if hole else _closed_port()}"
    try:
        t0 = time.monotonic()
        res = CliRunner().invoke(trader_main, ["live", "--base-url", url, "--connect-timeout", "2", "--duration", "1",
                                               "--state-dir", str(tmp_path / "state")])
        elapsed = time.monotonic() - t0
    finally:
        if hole:
            hole.close()
    assert res.exit_code == errors.FAILED and "Traceback" not in res.output, res.output
    text = " ".join(res.output.split())
    assert "the exchange could not be reached" in text and url in text and "--connect-timeout" in text
    assert elapsed < 6, f"{elapsed:.1f} s to fail with --connect-timeout 2"


def test_live_keeps_its_ledger_in_the_state_dir_not_the_working_directory(tmp_path, monkeypatch):
    from trader.live.launch import LiveOptions, default_db, state_dir

    monkeypatch.delenv("TRADER_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "trader" / "live"
    assert default_db(LiveOptions()) == str(tmp_path / "xdg/trader/live/binance__btc-usdt__paper.sqlite")
    monkeypatch.setenv("TRADER_STATE_DIR", str(tmp_path / "state"))
    assert default_db(LiveOptions(real=True)) == str(tmp_path / "state/binance__btc-usdt__real.sqlite")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(trader_main, ["live", "--base-url", f"http://127.0.0.1:{_closed_port()}",
                                           "--connect-timeout", "0.5", "--duration", "1"])
    assert res.exit_code == errors.FAILED
    assert len(list((tmp_path / "state").glob("binance-http-127.0.0.1-*__btc-usdt__paper.sqlite"))) == 1
    assert not list(tmp_path.glob("*.sqlite"))  # nothing in the working directory


def _commands(group: click.Group, ctx: click.Context, prefix: str):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, click.Context(command, parent=ctx, info_name=name), f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_every_option_of_every_command_has_help():
    missing, seen = [], 0
    for top, name in ((trader_main, "trader"), (sim_main, "trader-sim")):
        for path, command in _commands(top, click.Context(top, info_name=name), name):
            seen += 1
            for param in command.params:
                if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                    missing.append(f"{path} {param.opts[0]}")
    assert seen >= 14 and not missing, f"options without help: {missing}"


def test_train_resume_and_live_fall_back_from_a_corrupt_latest_checkpoint_and_say_which(tmp_path, agent_run):
    run = _corrupt_copy(agent_run, tmp_path)
    good = f"{run}/checkpoints/step_000000000256"
    res = CliRunner().invoke(trader_main, ["live", "--checkpoint", str(run), "--base-url",
                                           f"http://127.0.0.1:{_closed_port()}", "--connect-timeout", "0.5",
                                           "--state-dir", str(tmp_path / "state")])
    assert res.exit_code == errors.FAILED and "Traceback" not in res.output
    assert f"policy: ppo:{good}\n" in res.output
    res = CliRunner().invoke(trader_main, ["train", "--resume", str(run), "--total-timesteps", "512", *FAST])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert f"resumed from {good}" in res.output
    assert (run / "checkpoints" / "step_000000000512").is_dir()


def test_deprecated_spellings_still_work_and_say_so(tmp_path):
    res = CliRunner().invoke(trader_main, ["live", "--fee-bps", "2", "--base-url", f"http://127.0.0.1:{_closed_port()}",
                                           "--connect-timeout", "0.2", "--state-dir", str(tmp_path)])
    assert res.exit_code == errors.FAILED and "--fee-bps is deprecated; use --taker-fee-bps" in res.output
    res = CliRunner().invoke(trader_main, ["live", "--fee-bps", "2", "--taker-fee-bps", "3"])
    assert res.exit_code == errors.USAGE and "--fee-bps and --taker-fee-bps: give one" in res.output
    res = CliRunner().invoke(trader_main, ["train", "--runs-dir", str(tmp_path / "runs"), "--total-timesteps", "150",
                                           "--num-envs", "1", "--horizon", "50", "--config", str(_tiny(tmp_path)), *FAST])
    assert res.exit_code == 0 and "--runs-dir is deprecated; use -o/--out" in res.output, res.output
    assert "PPO trains in whole updates of 64 env steps" in res.output and "runs 128 steps" in res.output
    assert "steps: 128 " in res.output
    (run,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"trader__ppo__0__\d{8}-\d{6}", run.name)  # date-time, as evaluate and train-encoder


def _tiny(tmp_path: Path) -> Path:
    config = tmp_path / "tiny.yaml"
    config.write_text("num_steps: 64\nhidden_sizes: [8, 8]\n")
    return config


def test_one_surface_seed_fee_and_output_option_everywhere():
    from trader.live.policy import load_policy
    from trader.options import SEED
    from trader.rl.args import CommonArgs
    from trader.sim import spec

    ctx = click.Context(trader_main)
    sim_ctx = click.Context(sim_main)
    params = {name: {p.name: p for p in cmd.params}
              for group, c in ((trader_main, ctx), (sim_main, sim_ctx)) for name, cmd in _commands(group, c, "")}
    assert CommonArgs.seed == SEED and params[" serve"]["seed"].default == SEED
    assert params[" train-encoder"]["seeds"].default.split(",")[0] == str(SEED)
    fees = spec.defaults()
    assert params[" serve"]["taker_fee_bps"].default == fees["taker_fee_bps"]
    # live's paper fee is the policy's, as in backtest (issue 16); a scripted policy's is the env spec's
    assert params[" live"]["fee_bps"].default is None
    assert load_policy("scripted:hold").env["taker_fee_bps"] == fees["taker_fee_bps"]
    assert params[" serve"]["maker_fee_bps"].default == fees["maker_fee_bps"]
    writers = [" train", " train-encoder", " embed", " backtest", " evaluate", " record", " convert", " data convert"]
    for name in writers:  # where a command writes: -o/--out in every one
        opts = [p.opts for p in params[name].values() if isinstance(p, click.Option) and not p.hidden]
        assert ["-o", "--out"] in opts, name
    assert params[" train"]["resume"].flag_value == params[" train-encoder"]["resume"].flag_value == "latest"


def test_train_refuses_the_default_grid_on_one_minute_data_and_warns_on_a_given_one(tmp_path):
    from conftest import shared

    raw = shared("coinbase_btcusd_2021-04-17_1min_book15", "test.csv.gz")
    data = tmp_path / "cb"
    assert CliRunner().invoke(sim_main, ["convert", str(raw), "-o", str(data)]).exit_code == 0
    train = ["train", "--data", str(data), "--total-timesteps", "128", "--num-envs", "1", "--horizon", "50",
             "--config", str(_tiny(tmp_path)), *FAST]
    res = CliRunner().invoke(trader_main, [*train, "-o", str(tmp_path / "refused")])
    assert res.exit_code == errors.USAGE and "Traceback" not in res.output
    assert "--interval-ms" in res.output and "every 60000 ms" in res.output and "--interval-ms 60000" in res.output
    assert not (tmp_path / "refused").exists()
    res = CliRunner().invoke(trader_main, [*train, "--interval-ms", "1000", "-o", str(tmp_path / "fine")])
    assert res.exit_code == 0, res.output
    assert "warning: --interval-ms 1000" in res.output and "repeats each book about 60 times" in res.output
    res = CliRunner().invoke(trader_main, [*train, "--interval-ms", "60000", "-o", str(tmp_path / "minutes")])
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    saved = (tmp_path / "minutes" / "config.yaml").read_text()
    assert "interval_ms: 60000" in saved
    # evaluate applies the same check before any fold trains
    res = CliRunner().invoke(trader_main, ["evaluate", "--data", str(data), "--folds", "1", "--seeds", "1",
                                           "--no-progress-bar", "-o", str(tmp_path / "evaluation")])
    assert res.exit_code == errors.USAGE and "Traceback" not in res.output
    assert "--interval-ms" in res.output and "every 60000 ms" in res.output
    assert not (tmp_path / "evaluation").exists()
