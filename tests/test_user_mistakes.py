"""Issue 17: every user mistake gets a clear error. A table of wrong invocations runs through the real
console entry points (`trader.cli:main`, `trader.sim.cli:main`, in click's CliRunner) and each must
exit non-zero, print no traceback and name the flag or file at fault. Beside it: the exit codes of
trader.errors, `--version` on both commands, whole command summaries in `trader --help`, and
`trader backtest` falling back from a corrupt latest checkpoint, saying which step it used."""

from __future__ import annotations

import json
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
    runs = tmp_path_factory.mktemp("runs")
    res = CliRunner().invoke(trader_main, ["train", "--total-timesteps", "384", "--num-envs", "1", "--horizon", "50",
                                           "--save-freq", "128", "--runs-dir", str(runs), *FAST])
    assert res.exit_code == 0, res.output
    (run,) = runs.iterdir()
    return run


def _cases(tmp: Path, agent_run: Path) -> list[tuple[object, list[str], str]]:
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("seed: [1\n  bad: : :\n")
    train = ["train", "--runs-dir", str(tmp / "runs"), *FAST]
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
        (trader_main, ["no-such-command"], "no-such-command"),
        (sim_main, ["info", str(tmp / "no_such_dataset")], "no_such_dataset"),
    ]
    if not torch.cuda.is_available():
        cases.append((trader_main, ["train-encoder", "--device", "cuda", "--out", str(tmp / "enc")], "--device"))
    return cases


def test_wrong_invocations_fail_cleanly_naming_the_flag_or_file(tmp_path, agent_run):
    failures = []
    for command, argv, named in _cases(tmp_path, agent_run):
        res = CliRunner().invoke(command, argv)
        out = res.output
        escaped = res.exception is not None and not isinstance(res.exception, SystemExit)  # a traceback in a shell
        if res.exit_code == 0 or escaped or "Traceback" in out or named not in out:
            failures.append(f"{' '.join(argv)}: exit {res.exit_code}, {named!r} named: {named in out}\n{out[-800:]}")
    assert not failures, "\n\n".join(failures)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "enc").exists()  # refused before any run folder


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
    run = tmp_path / agent_run.name
    shutil.copytree(agent_run, run)
    weights = run / "checkpoints" / "step_000000000384" / "weights" / "agent.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
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
    assert "-o/--output" in res.output and "BTCUSDT" in res.output and "ETHUSDT" in res.output
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
