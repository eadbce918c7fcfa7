"""`trader evaluate` (issue 13): walk-forward folds never leak, the bootstrap on known cases, seeds
reproduce whatever the job count, and bad input gets a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import trader
from conftest import quoting_config, shared
from trader.cli import main
from trader.evaluate.folds import block_folds, dataset_folds, tail_folds
from trader.evaluate.stats import bootstrap_mean
from trader.evaluate.summary import MIN_BLOCKS, Z95, across_blocks, blocks_needed, gate_summary, track_record_gate
from trader.rl.envs import training_start_max


@pytest.mark.parametrize("rows, folds, horizon", [(1797, 3, 100), (1000, 1, 50), (5003, 7, 200)])
def test_no_training_episode_reaches_a_test_row(rows, folds, horizon):
    plan = block_folds("d", rows, folds, horizon)
    assert [f.index for f in plan] == list(range(1, folds + 1))
    for f in plan:
        last_start = training_start_max(f.train_total, f.train_fraction, horizon)
        assert last_start + horizon < f.test_start  # the last row an episode reaches is before the test block
        assert f.test_start == f.train_rows and f.test_end < rows
    # the test blocks tile the rows after the first block, in order
    assert [f.test_start for f in plan[1:]] == [f.test_end + 1 for f in plan[:-1]]
    assert plan[-1].test_end == rows - 1


def test_tail_folds_test_only_the_last_seconds_and_never_train_on_them():
    ts = np.arange(10_000, dtype=np.int64) * 100_000_000 + 7  # 100 ms rows, 1,000 s
    plan = tail_folds("d", ts, 250.0, 3, 100)
    first = 10_000 - 2_500 - 1  # the first row at most 250 s before the last one
    assert plan[0].test_start == first and ts[-1] - ts[first] == 250 * 10**9
    assert [f.test_start for f in plan[1:]] == [f.test_end + 1 for f in plan[:-1]] and plan[-1].test_end == 9_999
    for f in plan:
        assert f.train_data == f.test_data == "d" and f.train_rows == f.test_start
        assert training_start_max(f.train_total, f.train_fraction, 100) + 100 < f.test_start
    with pytest.raises(ValueError, match=r"fold 1: the training rows of d has 0 rows, fewer than the 102 it needs; hold out "
                                         "fewer seconds"):
        tail_folds("d", ts, 2_000.0, 2, 100)
    with pytest.raises(ValueError, match="the test block of d has 2 rows"):
        tail_folds("d", ts, 0.3, 2, 100)


def test_dataset_folds_train_on_the_one_before():
    plan = dataset_folds(["a", "b", "c"], [500, 400, 300], 100)
    assert [(f.train_data, f.train_rows, f.test_data, f.test_start, f.test_end) for f in plan] == [
        ("a", 500, "b", 0, 399), ("b", 400, "c", 0, 299)]
    assert all(f.train_fraction == 1.0 for f in plan)


def test_too_short_for_a_fold_names_the_dataset_and_what_to_change():
    with pytest.raises(ValueError, match=r"fold 1: the training rows of d has 33 rows, fewer than the 102"):
        block_folds("d", 100, 2, 100)
    with pytest.raises(ValueError, match="fold 2: the training dataset of b has 50 rows"):
        dataset_folds(["a", "b", "c"], [500, 50, 300], 100)
    with pytest.raises(ValueError, match="needs at least 2 datasets"):
        dataset_folds(["a"], [500], 10)


def test_bootstrap_on_known_cases():
    assert bootstrap_mean([2.5] * 7)[:3] == (2.5, 2.5, 2.5)
    one = bootstrap_mean([4.0])
    assert one.mean == 4.0 and one.low is None and one.text() == "+4.00 (n=1)"
    x = np.random.default_rng(1).normal(3.0, 2.0, size=400)
    ci = bootstrap_mean(x, seed=7)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the normal interval the bootstrap approaches
    assert ci.mean == pytest.approx(x.mean())
    assert ci.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.1 * half)
    assert bootstrap_mean(x, seed=7) == ci  # seeded
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean([1.0, float("nan")])


def test_across_blocks_on_known_cases():
    """Per test block the agent's mean over seeds against the baselines of that block: the mean over blocks and,
    from MIN_BLOCKS blocks, its bootstrap interval over them; the blocks where the agent beat every baseline."""
    base = [{"flat": 0.0, "buy_and_hold": b} for b in (1.0, -2.0, 0.5, 3.0, -1.0)]
    blocks = across_blocks([1.0, 2.0, 3.0, 4.0, 5.0], base, "flat", seed=3)
    assert blocks["n"] == 5 and blocks["agent"]["mean"] == 3.0
    assert blocks["agent"] == bootstrap_mean([1.0, 2.0, 3.0, 4.0, 5.0], seed=3)._asdict()
    assert blocks["agent_minus_best_baseline"]["mean"] == 3.0  # minus flat's 0 in every block
    assert blocks["beating_every_baseline"] == 4  # block 1: 1.0 does not beat buy_and_hold's 1.0
    few = across_blocks([1.0, 2.0, 3.0], base[:3], "buy_and_hold")
    assert few["n"] == 3 and few["agent"]["low"] is None and few["agent"]["high"] is None
    assert few["agent_minus_best_baseline"]["mean"] == pytest.approx((0.0 + 4.0 + 2.5) / 3)


def test_blocks_needed_on_known_cases():
    """The blocks a 95 % interval over blocks needs to clear zero at the blocks' mean and spread: the smallest n with
    mean - 1.96 sd / sqrt(n) > 0, never below MIN_BLOCKS; none for a mean at or below zero or too few blocks; and the
    report says it where the interval crosses zero."""
    from trader.evaluate.report import _blocks_line

    wide = [-3.0, -1.0, 1.0, 3.0, 5.0]  # mean 1, sd sqrt(10): 1.96^2 * 10 = 38.4
    assert blocks_needed(wide) == 39
    assert 1.0 - Z95 * np.std(wide, ddof=1) / np.sqrt(39) > 0 > 1.0 - Z95 * np.std(wide, ddof=1) / np.sqrt(38)
    assert blocks_needed([1.0, 2.0, 3.0, 4.0, 5.0]) == MIN_BLOCKS  # 2 would do; no interval below MIN_BLOCKS
    assert blocks_needed([-1.0, -2.0, 0.0, 1.0, -3.0]) is None and blocks_needed([0.0] * 5) is None
    assert blocks_needed([1.0, 2.0, 3.0]) is None
    flat = [{"flat": 0.0}] * 5
    assert across_blocks(wide, flat, "flat")["blocks_needed"] == 39
    assert "needs about 39 such blocks" in _blocks_line(across_blocks(wide, flat, "flat"), "flat")
    assert "such blocks" not in _blocks_line(across_blocks([1.0, 2.0, 3.0, 4.0, 5.0], flat, "flat"), "flat")
    assert "no number of such blocks" in _blocks_line(across_blocks([-1.0, -2.0, 0.0, 1.0, -3.0], flat, "flat"), "flat")


def test_track_record_gate_reads_only_earlier_blocks():
    """Paper first: a seed trades block k only while its PnL over blocks 1..k-1 (traded or not) is above zero; the
    first block has no record and is flat; a record at exactly 0 does not open the gate."""
    blocks = {0: [5.0, -2.0, -4.0, 3.0, 7.0], 1: [-1.0, 4.0, 2.0, -3.0, 1.0], 2: [0.0, 6.0, -6.0, 2.0, 9.0]}
    gated = track_record_gate(blocks)
    assert gated[0] == [0.0, -2.0, -4.0, 0.0, 7.0]  # records 0, 5, 3, -1, 2
    assert gated[1] == [0.0, 0.0, 2.0, -3.0, 1.0]  # records 0, -1, 3, 5, 2
    assert gated[2] == [0.0, 0.0, -6.0, 0.0, 9.0]  # records 0, 0, 6, 0, 2
    # what block k's decision sees cannot change with what came after it
    assert track_record_gate({0: [5.0, -2.0, -4.0, 3.0, 70.0]})[0][:4] == gated[0][:4]
    base = [{"flat": 0.0}] * 5
    seeds_mean = [float(np.mean(v)) for v in zip(*blocks.values())]
    g = gate_summary(blocks, seeds_mean, base, "flat")
    assert g["per_block"] == pytest.approx([0.0, -2 / 3, -8 / 3, -1.0, 17 / 3])
    assert g["per_seed"] == {0: 1.0, 1: 0.0, 2: 3.0} and g["open"] == 8 and g["tests"] == 15
    assert g["minus_seeds_mean"]["mean"] == pytest.approx(np.mean(np.subtract(g["per_block"], seeds_mean)))


def _evaluate(tmp_path, name, *extra):
    out = tmp_path / name
    res = CliRunner().invoke(main, ["evaluate", "--folds", "2", "--seeds", "2", "--total-timesteps", "1024",
                                    "--num-envs", "4", "--horizon", "100", "--actions", "quote",
                                    "--config", quoting_config(tmp_path),
                                    "--out", str(out), "--no-progress-bar", *extra])
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "evaluation.json").read_text())


def test_evaluate_on_the_sample_reproduces_and_never_trains_on_test_rows(tmp_path):
    out, first = _evaluate(tmp_path, "a")
    _, second = _evaluate(tmp_path, "b", "--jobs", "2")
    assert first["summary"] == second["summary"]  # same seeds, same numbers, in one process or two
    summary = first["summary"]
    assert len(summary["folds"]) == 2 and summary["overall"]["agent"]["n"] == 2
    strategies = summary["folds"][0]["strategies"]
    assert {"agent", "flat", "buy_and_hold", "order_imbalance", "fixed_spread", "avellaneda_stoikov"} == set(strategies)
    assert strategies["flat"]["pnl_quote"] == 0
    # every trained run saw only its fold's training rows
    from trader.rl.policy import load

    for job in first["jobs"]:
        fold = first["context"]["folds"][job["fold"] - 1]
        args = load(job["run_dir"]).args
        test_start = int(fold["describe"].split("test sample rows ")[1].split("..")[0])
        assert training_start_max(1797, args["train_fraction"], args["horizon"]) + args["horizon"] < test_start
    traded = sum(any(m["trades"] > 0 for m in job["metrics"]) for job in first["jobs"])
    assert summary["overall"]["tests"] == 4 and summary["overall"]["tests_that_traded"] == traded
    at_limit = [m["time_at_limit_pct"] for job in first["jobs"] for m in job["metrics"]]
    assert summary["overall"]["time_at_limit_pct"] == pytest.approx(sum(at_limit) / len(at_limit))
    md = (out / "evaluation.md").read_text()
    assert "95 % CI" in md and "agent minus the best baseline" in md and "seeds beating flat" in md
    assert f"tests in which the agent traded: {traded} of 4" in md
    per_block = [np.mean([m["pnl_bps_of_max_notional"] for job in first["jobs"] if job["fold"] == f
                          for m in job["metrics"]]) for f in (1, 2)]
    blocks = summary["overall"]["blocks"]
    assert blocks["n"] == 2 and blocks["agent"]["mean"] == pytest.approx(np.mean(per_block))
    assert blocks["agent"]["low"] is None and "no interval from 2 blocks" in md
    gate = summary["overall"]["track_record_gate"]  # fold 1 flat; fold 2 where the seed's fold 1 earned
    pnl = {(j["fold"], j["seed"]): np.mean([m["pnl_bps_of_max_notional"] for m in j["metrics"]]) for j in first["jobs"]}
    seeds = sorted({s for _, s in pnl})
    assert gate["per_block"][0] == 0.0
    assert gate["per_block"][1] == pytest.approx(np.mean([pnl[2, s] if pnl[1, s] > 0 else 0.0 for s in seeds]))
    assert "paper first" in md
    for png in ("fold_1.png", "fold_2.png", "overall.png", "actions.png"):
        assert (out / png).stat().st_size > 5_000


def test_evaluate_with_mirror_trains_on_the_mirror_image_of_the_training_rows_only(tmp_path):
    """--mirror: every agent's env draws episodes from the recording and its mirror image, neither reaching
    the fold's test rows; the tests run on the recording itself; with --encoder it is a usage error."""
    from trader.rl import ppo
    from trader.rl.envs import make_env
    from trader.rl.policy import load

    res = CliRunner().invoke(main, ["evaluate", "--mirror", "--encoder", str(tmp_path), "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "--mirror: not with --encoder" in res.output, res.output
    out, report = _evaluate(tmp_path, "m", "--mirror")
    assert report["summary"]["overall"]["agent"]["n"] == 2
    for job in report["jobs"]:
        fold = report["context"]["folds"][job["fold"] - 1]
        args = load(job["run_dir"]).args
        assert args["mirror"] is True
        env = make_env(ppo.Args(**{k: v for k, v in args.items() if k in ppo.Args.__dataclass_fields__}), 8, seed=0)
        assert [m.name.endswith("(mirrored)") for m in env.markets] == [False, True]
        test_start = int(fold["describe"].split("test sample rows ")[1].split("..")[0])
        _, info = env.reset(seed=0)
        rows = [info["t"].copy()]
        for _ in range(5 * args["horizon"]):  # several episodes of each env, from both datasets
            *_, info = env.step(np.zeros(8, dtype=np.int64))
            rows.append(info["t"].copy())
        assert np.max(rows) < test_start


def test_evaluate_tail_s_tests_only_the_recordings_last_seconds(tmp_path):
    """--tail-s S: the --folds test blocks tile the sample's last S seconds, each fold training on every row
    before its block; with several datasets it is a usage error."""
    from trader.data.dataset import sample_path
    from trader.sim import load_market

    out, report = _evaluate(tmp_path, "t", "--tail-s", "60")
    ts = load_market(None).ts
    first = int(np.searchsorted(ts, ts[-1] - 60 * 10**9))
    starts = [int(f["describe"].split("test sample rows ")[1].split("..")[0]) for f in report["context"]["folds"]]
    assert starts[0] == first and starts[1] > first and report["summary"]["overall"]["agent"]["n"] == 2
    res = CliRunner().invoke(main, ["evaluate", "--data", str(sample_path()), "--data",
                                    str(sample_path()), "--tail-s", "60", "--allow-overlap",
                                    "--out", str(tmp_path / "x"), "--no-progress-bar"])
    assert res.exit_code == 2 and "--tail-s: cuts one dataset's end" in res.output, res.output


def test_bad_input_is_a_usage_error(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", "--folds", "40", "--horizon", "500", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "fold 1" in res.output and "--folds" in res.output, res.output
    res = runner.invoke(main, ["evaluate", "--taker-fee-bps", "nan", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "--taker-fee-bps" in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.fixture(scope="module")
def btc_days(tmp_path_factory):
    """Binance USD-M BTCUSDT 2024-07-18/19, spot BTCUSDT 2024-08-08/09 and USD-M BTCUSDT 2024-08-08 (real
    recordings; the spot book has another tick and lot than the USD-M ones)."""
    raw = shared("binance_hftbacktest_raw_feed")
    out = tmp_path_factory.mktemp("btc")
    runner = CliRunner()
    days = {"usdm_0718": ["usdm/btcusdt_20240718.gz", "usdm/btcusdt_20240719.gz"],
            "spot_0808": ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"],
            "usdm_0808": ["usdm/btcusdt_20240808.gz"]}
    for name, files in days.items():
        res = runner.invoke(main, ["data", "convert", *[str(raw / f) for f in files], "-o", str(out / name)])
        assert res.exit_code == 0, res.output
    return [str(out / name) for name in days]


def test_datasets_out_of_time_order_are_refused(tmp_path, btc_days):
    res = CliRunner().invoke(main, ["evaluate", "--data", btc_days[2], "--data", btc_days[0],
                                    "--out", str(tmp_path / "ev")])
    assert res.exit_code == 2 and "starts before" in res.output and "usdm_0718" in res.output, res.output


def test_folds_with_several_datasets_is_refused(tmp_path, btc_days):
    # each dataset after the first is a fold: --folds would be ignored, so it is an error
    res = CliRunner().invoke(main, ["evaluate", "--data", btc_days[0], "--data", btc_days[1], "--folds", "3",
                                    "--out", str(tmp_path / "ev")])
    assert res.exit_code == 2 and "--folds 3: with several datasets" in res.output, res.output
    assert not (tmp_path / "ev").exists()


def test_dataset_folds_train_on_several_datasets_together(tmp_path, btc_days):
    assert [f.train_datasets for f in dataset_folds(["a", "b", "c", "d"], [500] * 4, 100, window=2)] == [
        ["a", "b"], ["b", "c"]]
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["evaluate", *[x for d in btc_days for x in ("--data", d)], "--train-window", "2",
                                    "--allow-overlap", "--seeds", "1", "--total-timesteps", "1024", "--num-envs", "4",
                                    "--horizon", "100", "--out", str(out), "--no-progress-bar"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "evaluation.json").read_text())
    (job,) = report["jobs"]
    from trader.rl.policy import load

    trained = load(job["run_dir"]).args["data"]  # both earlier datasets, in one env
    assert [p.rsplit("/", 1)[-1] for p in trained] == ["usdm_0718", "spot_0808"]
    assert "usdm_0718 + " in report["context"]["folds"][0]["describe"]


def test_evaluate_with_an_encoder_trains_and_tests_on_its_embeddings(tmp_path, btc_days):
    """Issue 13, encoder in the loop: `--encoder RUN/MODEL` reaches every fold's training run, whose agent
    observes the embeddings (obs_dim = embedding + account features) and records the encoder; the test
    rows are embedded by the same encoder (the backtest would refuse another). An encoder whose run trained on a
    test dataset, or on data over a test block's time, is refused (it would carry the test rows into every fold).
    With --encoder-with-features the agent observes the book features beside the embeddings."""
    from trader.rl.policy import load
    from trader.sim import load_market

    def encoder(data: str, name: str) -> Path:
        r = CliRunner().invoke(main, ["train-encoder", "--data", data, "--out", str(tmp_path / name), "--model", "tcn",
                                      "--epochs", "1", "--max-steps-per-epoch", "2", "--seeds", "0", "--window", "50",
                                      "--horizons", "10,20", "--device", "cpu", "--no-baselines"])
        assert r.exit_code == 0, r.output
        return tmp_path / name / "tcn" / "best"

    july, spot, usdm_august = btc_days  # the evaluation's data: spot BTCUSDT 2024-08-08/09
    for data, said in ((spot, "it is a test dataset"), (usdm_august, "its rows span the test block of fold 1")):
        res = CliRunner().invoke(main, ["evaluate", "--data", spot, "--folds", "1", "--encoder",
                                        str(encoder(data, Path(data).name)), "--out", str(tmp_path / "refused")])
        assert res.exit_code == 2 and f"trained on {data}: {said}" in res.output, res.output
    model = encoder(july, "july")  # another instrument, weeks before
    # refused too: an encoder whose training data is gone, or kept outside its run folder (nothing says what it read)
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "july", moved)
    run_json = json.loads((moved / "data.json").read_text())
    (moved / "data.json").write_text(json.dumps({**run_json, "data": [str(tmp_path / "gone")]}))
    alone = tmp_path / "alone"
    shutil.copytree(model, alone)
    for path, said in ((moved / "tcn" / "best", f"trained on {tmp_path / 'gone'}: no such folder"),
                       (alone, "no data.json of its trader train-encoder run")):
        res = CliRunner().invoke(main, ["evaluate", "--data", spot, "--folds", "1", "--encoder", str(path),
                                        "--out", str(tmp_path / "refused")])
        assert res.exit_code == 2 and said in res.output, res.output
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["evaluate", "--data", spot, "--folds", "1", "--seeds", "1", "--encoder", str(model),
                                    "--total-timesteps", "512", "--num-envs", "2", "--horizon", "100",
                                    "--out", str(out), "--no-progress-bar"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "evaluation.json").read_text())
    (job,) = doc["jobs"]
    trained = load(job["run_dir"])
    dim = json.loads((model / "config.json").read_text())["train"]["embedding_dim"]
    assert trained.spec["obs_dim"] == dim + 3 and trained.args["encoder"] == str(model)
    assert trained.args["encoder_sha256"]
    assert set(doc["summary"]["folds"][0]["strategies"]) >= {"agent", "flat"}
    # the book features beside the embeddings: the set's width more, in training and in the fold's test
    res = CliRunner().invoke(main, ["evaluate", "--data", spot, "--folds", "1", "--seeds", "1", "--encoder", str(model),
                                    "--encoder-with-features", "--feature-set", "2", "--total-timesteps", "512",
                                    "--num-envs", "2", "--horizon", "100", "--out", str(tmp_path / "both"),
                                    "--no-progress-bar"])
    assert res.exit_code == 0, res.output
    (job,) = json.loads((tmp_path / "both" / "evaluation.json").read_text())["jobs"]
    both = load(job["run_dir"])
    width = load_market(spot, feature_set=2).features.shape[1]
    assert both.spec["obs_dim"] == width + dim + 3 and both.args["encoder_with_features"] is True
    res = CliRunner().invoke(main, ["evaluate", "--data", spot, "--encoder-with-features", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--encoder-with-features: give it with --encoder" in res.output, res.output


def test_folds_that_mix_instruments(tmp_path):
    """--train-window 2 over ETHUSDT, NEXOUSDT and BTCUSDT (in time order): the fold trains one agent on
    ETH and NEXO together and tests it on BTC, reading all three through feature set 2 (scale-free) and
    trading one size in USDT, each dataset in its own lots."""
    from trader.data.binance import convert_files
    from trader.data.dataset import write_dataset
    from trader.rl.policy import load

    paths = []
    for name, parts, seconds in (("eth", ("binance_hftbacktest_raw_feed", "usdm", "ethusdt_20240718.gz"), 120),
                                 ("nexo", ("binance_spot_nexousdt_raw_feed", "nexousdt_20240723.dat.gz"), 600),
                                 ("btc", ("binance_hftbacktest_raw_feed", "spot", "btcusdt_20240808.gz"), 120)):
        (events, meta), = convert_files([shared(*parts)], duration_s=seconds)
        paths.append(str(write_dataset(tmp_path / name, events, meta)))
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["evaluate", *[x for p in paths for x in ("--data", p)], "--train-window", "2",
                                    "--feature-set", "2", "--trade-notional", "200", "--max-position-notional", "2000",
                                    "--seeds", "1", "--total-timesteps", "1024", "--num-envs", "4", "--horizon", "100",
                                    "--interval-ms", "250",  # NEXOUSDT's book changes every ~300 ms
                                    "--out", str(out), "--no-progress-bar"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "evaluation.json").read_text())
    (job,) = report["jobs"]
    args = load(job["run_dir"]).args
    assert [p.rsplit("/", 1)[-1] for p in args["data"]] == ["eth", "nexo"]
    assert (args["feature_set"], args["trade_notional"], args["max_position_notional"]) == (2, 200.0, 2000.0)
    assert report["context"]["folds"][0]["symbol"] == "BTCUSDT"
    assert report["context"]["env"]["trade_notional"] == 200.0
    # the baselines on BTC trade 200 USDT per order too: buy-and-hold holds the 2000 USDT limit
    from trader.sim import load_market, spec

    btc = load_market(paths[2])
    price = spec.reference_price(btc.book, btc.tick_size)
    hold = report["baselines"]["1"]["buy_and_hold"]
    assert 0.9 * 2000 < hold["mean_abs_inventory_base"] * price < 1.1 * 2000


def test_validation_folds_train_on_the_same_rows_and_validate_just_before_the_test_block():
    from trader.evaluate.choose import validation_folds

    ts = np.arange(10_000, dtype=np.int64) * 100_000_000  # 100 ms rows
    plan = tail_folds("d", ts, 250.0, 2, 100)
    val, test = validation_folds(plan, lambda _: ts, 60.0, 100)
    for f, v, t in zip(plan, val, test):
        assert v.train_rows == t.train_rows and v.train_data == t.train_data == "d"  # one seed, one agent
        assert (t.test_start, t.test_end) == (f.test_start, f.test_end)  # the fold's own test block
        assert v.test_start == v.train_rows and v.test_end == f.test_start - 1  # the rows just before it
        assert ts[f.test_start] - ts[v.test_start] == 60 * 10**9
        assert training_start_max(v.train_total, v.train_fraction, 100) + 100 < v.test_start  # no leak
    # several datasets: the validation block is the end of the training dataset
    ts_of = {"a": np.arange(3_000, dtype=np.int64) * 100_000_000, "b": np.arange(2_000, dtype=np.int64)}.get
    (v,), (t,) = validation_folds(dataset_folds(["a", "b"], [3_000, 2_000], 100), ts_of, 100.0, 100)
    assert (v.test_data, v.test_start, v.test_end, t.test_data, t.train_rows) == ("a", 1_999, 2_999, "b", 1_999)
    with pytest.raises(ValueError, match=r"fold 1: the training rows before the validation block of d has \d+ rows, "
                                         "fewer than the 102 it needs; use a shorter --validation-s"):
        validation_folds(plan, lambda _: ts, 745.0, 100)


def test_chosen_on_validation_keeps_each_groups_best_seed_on_validation():
    from trader.evaluate.choose import chosen_on_validation
    from trader.evaluate.summary import METRICS

    def job(fold, seed, pnl):
        return {"fold": fold, "seed": seed, "agents": [{"metrics": {m: pnl for m, _, _ in METRICS}}]}

    val_pnl = {0: 5.0, 1: -2.0, 2: 1.0, 3: 3.0}  # groups (0, 1) and (2, 3): seeds 0 and 3 are chosen
    test_pnl = {0: 7.0, 1: -9.0, 2: 0.5, 3: 4.0}
    run = {"baselines": {1: []}, "notes": {1: []},
           "agents": [{**job(1, s, p), "validation": job(1, s, val_pnl[s])["agents"]} for s, p in test_pnl.items()]}
    result, (fold,) = chosen_on_validation(run, 2)
    assert [(a["seed"], a["chosen_seed"], a["agents"][0]["metrics"]["pnl_quote"]) for a in result["agents"]] == [
        (0, 0, 7.0), (1, 3, 4.0)]
    assert fold["chosen"] == {0: 0, 1: 3} and all("validation" not in a for a in result["agents"])
    assert fold["correlation"] == pytest.approx(np.corrcoef(list(val_pnl.values()), list(test_pnl.values()))[0, 1])
    with pytest.raises(ValueError, match="4 seeds are not groups of 3"):
        chosen_on_validation(run, 3)


def test_evaluate_chooses_among_seeds_on_validation(tmp_path):
    out, first = _evaluate(tmp_path, "v", "--validation-s", "20", "--choose-among", "2")
    choice = first["context"]["choice"]
    assert first["summary"]["overall"]["agent"]["n"] == 1  # 2 seeds, one group
    for fold in choice["folds"]:
        best = max(fold["validation"], key=fold["validation"].get)
        assert fold["chosen"] == {"0": int(best)}
    assert "Seeds chosen on validation" in (out / "evaluation.md").read_text()
    every = [fold["test"][s]["pnl_bps_of_max_notional"] for fold in choice["folds"] for s in fold["test"]]
    assert choice["every_seed"]["agent"]["mean"] == pytest.approx(sum(every) / 2)  # 2 seeds, summed over folds
    assert "without the choice, every one of the 2 seeds" in (out / "evaluation.md").read_text()
    # one training per fold and seed serves both backtests
    assert [len([d for d in (out / f"fold_{i}").iterdir() if d.is_dir()]) for i in (1, 2)] == [2, 2]
    for fold in choice["folds"]:  # the validation rows are not the test rows: other numbers
        assert all(fold["validation"][s] != fold["test"][s]["pnl_bps_of_max_notional"] for s in fold["validation"])
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", "--seeds", "3", "--choose-among", "2", "--validation-s", "20",
                               "--folds", "2", "--horizon", "100", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--seeds" in res.output and "multiple of --choose-among 2" in res.output, res.output
    res = runner.invoke(main, ["evaluate", "--validation-s", "500", "--seeds", "4", "--folds", "2", "--horizon", "100",
                               "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "use a shorter --validation-s" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["evaluate", "--choose-among", "2", "--out", str(tmp_path / "z")])
    assert res.exit_code == 2 and "--choose-among: give it with --validation-s" in res.output, res.output


def test_train_keeps_the_best_of_its_seeds_on_validation_and_backtests_after_it(tmp_path):
    from trader.rl.policy import load

    sample = str(Path(trader.__file__).parent / "data" / "sample")
    out = tmp_path / "choice"
    common = ["--total-timesteps", "1024", "--num-envs", "4", "--horizon", "100", "--actions", "quote",
              "--config", quoting_config(tmp_path),
              "--no-progress-bar"]
    res = CliRunner().invoke(main, ["train", "--validation-s", "20", "--choose-among", "3", "-o", str(out), *common])
    assert res.exit_code == 0, res.output
    choice = json.loads((out / "choice.json").read_text())
    assert choice["train_fraction"] == 0.7 and sorted(choice["seeds"]) == ["0", "1", "2"]
    pnl = {int(s): v["pnl_bps_of_max_notional"] for s, v in choice["seeds"].items()}
    assert choice["chosen"]["seed"] == max(pnl, key=pnl.get) and len(set(pnl.values())) > 1, pnl
    assert "flat" in choice["baselines"] and f"chosen: seed {choice['chosen']['seed']}" in res.output
    validation_start = int(choice["validation"].split("chosen on rows ")[1].split("..")[0])
    for seed in choice["seeds"].values():  # no agent trained on the validation rows
        args = load(out / seed["run_dir"]).args
        assert training_start_max(1797, args["train_fraction"], 100) + 100 < validation_start
    # the folder stands for its chosen run; its backtest starts after the rows the choice saw
    res = CliRunner().invoke(main, ["backtest", "--checkpoint", str(out), "--out", str(tmp_path / "bt")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert report["context"]["start"] == int(1797 * 0.7) > validation_start
    assert choice["chosen"]["run_dir"] in report["context"]["checkpoint_read"]
    other = str(tmp_path / "x")
    for extra, message in [(["--choose-among", "2", "-o", other], "--choose-among: give it with --validation-s"),
                           (["--jobs", "2", "-o", other], "--jobs: give it with --validation-s"),
                           (["--validation-s", "20", "--resume", str(out), "-o", other], "give no --resume"),
                           (["--validation-s", "20", "--nproc", "2", "-o", other], "or --nproc"),
                           (["--validation-s", "20", "--data", sample, "--data", sample, "-o", other],
                            "give one dataset"),
                           (["--validation-s", "20", "-o", str(out)], "already holds files")]:
        res = CliRunner().invoke(main, ["train", *extra, *common])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert message in res.output, res.output


def test_train_committee_is_one_agent_for_backtest_and_its_members_each_a_run(tmp_path):
    sample = str(Path(trader.__file__).parent / "data" / "sample")
    out = tmp_path / "committee"
    common = ["--total-timesteps", "1024", "--num-envs", "4", "--horizon", "100", "--actions", "quote",
              "--config", quoting_config(tmp_path), "--no-progress-bar"]
    res = CliRunner().invoke(main, ["train", "--committee", "3", "--jobs", "2", "-o", str(out), *common])
    assert res.exit_code == 0, res.output
    committee = json.loads((out / "committee.json").read_text())
    assert committee["train_fraction"] == 0.7 and sorted(committee["members"]) == ["0", "1", "2"]
    assert f"tested on rows {int(1797 * 0.7)}..1796" in committee["held_out"], committee["held_out"]
    assert "flat" in committee["baselines"] and "the committee of the 3" in res.output
    members = [str(out / committee["members"][s]["run_dir"]) for s in ("0", "1", "2")]
    # the folder is the committee of its members: the same backtest as the three given one by one, on the rows
    # after the members' training rows, and the PnL the run reported for it
    reports = {}
    for name, given in (("folder", [str(out)]), ("members", members)):
        res = CliRunner().invoke(main, ["backtest", *[a for m in given for a in ("--checkpoint", m)],
                                        "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        reports[name] = json.loads((tmp_path / name / "backtest.json").read_text())
        assert reports[name]["context"]["start"] == int(1797 * 0.7)
    agent = next(n for n in reports["folder"]["results"] if n not in committee["baselines"])
    pnl = reports["folder"]["results"][agent]["pnl_bps_of_max_notional"]
    assert pnl == reports["members"]["results"][agent]["pnl_bps_of_max_notional"]
    assert pnl == pytest.approx(committee["committee"]["pnl_bps_of_max_notional"], abs=1e-9)
    assert committee["committee"]["trades"] > 0  # so the PnL compared is the committee's trading, not a flat 0
    # trader live takes the folder as the same committee
    from trader.live.policy import load_policy

    folder, given = load_policy(str(out)), load_policy(members)
    assert folder.name == given.name and folder.name.startswith("ppo:committee of 3: ") and folder.env == given.env
    other = str(tmp_path / "x")
    for extra, message in [(["--committee", "2", "-o", other], "2 is not in the range x>=3"),
                           (["--committee", "3", "--validation-s", "20", "-o", other], "give one of the two"),
                           (["--committee", "3", "--nproc", "2", "-o", other], "or --nproc"),
                           (["--jobs", "2", "-o", other], "--jobs: give it with --validation-s or --committee"),
                           (["--committee", "3", "--data", sample, "--data", sample, "-o", other],
                            "--committee: give one dataset"),
                           (["--committee", "3", "-o", str(out)], "already holds files"),
                           (["--committee", "3", "--train-fraction", "1", "-o", other], "keeps 0 of its 1797 rows"),
                           (["--resume", str(out)], "the committee of 3 agents (trader train --committee)")]:
        res = CliRunner().invoke(main, ["train", *extra, *common])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert message in res.output, res.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "committee.json").write_text(json.dumps({"train_fraction": 0.7, "members": {}}))
    res = CliRunner().invoke(main, ["backtest", "--checkpoint", str(broken), "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "not a committee of trader train --committee (no members)" in res.output, res.output


def _spawned_workers(parent: int) -> list[int]:
    """pids of the multiprocessing workers whose parent is `parent` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmd:
            out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killing_an_evaluation_ends_its_workers(tmp_path):
    """A `trader evaluate --jobs 2` killed outright (SIGKILL: no handler runs) leaves no worker training on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, PYTHONPATH=str(Path(trader.__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, "-m", "trader.cli", "evaluate", "--folds", "2", "--seeds", "2", "--jobs",
                             "2", "--total-timesteps", "1000000", "--no-progress-bar", "--out", str(tmp_path / "ev")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(workers := _spawned_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the evaluation ended before its workers started"
            time.sleep(0.2)
        assert len(workers) == 2
        time.sleep(2)  # past the workers' initializer
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while (alive := [w for w in workers if Path(f"/proc/{w}").exists()
                         and "Z" != (Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0])]) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive == [], f"workers {alive} outlived the killed evaluation"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_seeds_split_over_two_evaluations_gather_into_one_report(tmp_path):
    """--first-seed runs another range of seeds (another machine's share); its job files copied into the first
    run's --out and --resume with every seed give the report of one run of them all, training nothing again."""
    _, whole = _evaluate(tmp_path, "whole")
    first, _ = _evaluate(tmp_path, "first", "--seeds", "1")
    second, part = _evaluate(tmp_path, "second", "--seeds", "1", "--first-seed", "1")
    assert part["context"]["seeds"] == [1]
    for job in second.glob("fold_*/seed_1.job.pkl"):
        shutil.copy(job, first / job.parent.name / job.name)
    runs_before = sorted(first.glob("fold_*/trader__*"))
    _, gathered = _evaluate(tmp_path, "first", "--resume")
    assert sorted(first.glob("fold_*/trader__*")) == runs_before  # nothing trained again
    assert gathered["context"]["seeds"] == [0, 1]
    assert gathered["summary"] == whole["summary"]


def test_a_killed_evaluation_resumes_with_the_jobs_it_finished(tmp_path):
    """--resume takes back the fold x seed jobs kept in --out and trains only the others: the report equals an
    uninterrupted run's; a job kept by other options is an error, not mixed in."""
    out, whole = _evaluate(tmp_path, "a")
    kept = sorted(out.glob("fold_*/seed_*.job.pkl"))
    assert len(kept) == 4  # 2 folds x 2 seeds
    # as if killed after three jobs: one job file and the report gone (its run folder stays, half-written)
    kept[-1].unlink()
    (out / "evaluation.json").unlink()
    runs_before = sorted(out.glob("fold_*/trader__*"))
    _, resumed = _evaluate(tmp_path, "a", "--resume")
    runs_after = sorted(out.glob("fold_*/trader__*"))
    assert len(runs_after) == len(runs_before) + 1  # only the lost job trained again
    assert resumed["summary"] == whole["summary"]
    res = CliRunner().invoke(main, ["evaluate", "--folds", "2", "--seeds", "2", "--total-timesteps", "1024",
                                    "--num-envs", "4", "--horizon", "100", "--actions", "quote", "--taker-fee-bps", "3",
                                    "--out", str(out), "--no-progress-bar", "--resume"])
    assert res.exit_code == 2 and "seed_" in res.output and "other options" in res.output, res.output
    res = CliRunner().invoke(main, ["evaluate", "--resume"])
    assert res.exit_code == 2 and "--resume" in res.output and "--out" in res.output, res.output


def test_train_also_trains_every_fold_on_other_recordings_in_full_and_never_on_test_rows(tmp_path, btc_days):
    """--train-also: every fold's agent also trains on another recording, all of its rows (no held-out tail),
    while the fold's own recording stays cut before its test block; a --train-also dataset that is a test
    dataset, or whose time spans a test block, is refused (issue 13: leave one recording out and walk forward)."""
    from trader.data.binance import convert_files
    from trader.data.dataset import write_dataset
    from trader.rl import ppo
    from trader.rl.envs import make_env
    from trader.rl.policy import load
    from trader.sim import load_market

    (events, meta), = convert_files([shared("binance_spot_nexousdt_raw_feed", "nexousdt_20240723.dat.gz")],
                                    duration_s=300)
    nexo = str(write_dataset(tmp_path / "nexo", events, meta))  # 2024-07-23: before the bundled sample's 08-09
    out, report = _evaluate(tmp_path, "also", "--train-also", nexo, "--feature-set", "2", "--seeds", "1",
                            "--interval-ms", "100")  # NEXOUSDT: a finer grid than its book on purpose
    assert f"every fold also trains on all rows of {nexo}" in (out / "evaluation.md").read_text()
    assert report["context"]["train_also"] == [nexo]
    sample, other = load_market(None, feature_set=2), load_market(nexo, feature_set=2)
    feats = [sample.features, other.features]
    for job in report["jobs"]:
        fold = report["context"]["folds"][job["fold"] - 1]
        test_start = int(fold["describe"].split("test sample rows ")[1].split("..")[0])
        args = load(job["run_dir"]).args
        assert args["train_also"] == [nexo] and args["data"] is None
        env = make_env(ppo.Args(**{k: v for k, v in args.items() if k in ppo.Args.__dataclass_fields__}), 16, seed=0)
        assert [m.symbol for m in env.markets] == ["BTCUSDT", "NEXOUSDT"]
        obs, info = env.reset(seed=0)
        reached = [0, 0]
        for _ in range(20 * args["horizon"]):
            for e in range(env.num_envs):
                t = int(info["t"][e])
                d = [i for i, f in enumerate(feats) if t < len(f) and np.array_equal(f[t], obs[e][:f.shape[1]])]
                assert d, "a row of neither dataset"
                for i in d:
                    reached[i] = max(reached[i], t)
            obs, *_, info = env.step(np.zeros(env.num_envs, dtype=np.int64))
        assert reached[0] < test_start  # the fold's recording: never its test rows
        assert reached[1] > 0.7 * len(other.book)  # the other recording: past any held-out fraction
    # refused: a test dataset as --train-also, and data over a test block's time
    for also, said in ((btc_days[2], "it is a test dataset"), (btc_days[1], "its rows span the test block of fold 1")):
        res = CliRunner().invoke(main, ["evaluate", "--data", btc_days[2], "--folds", "2", "--train-also", also,
                                        "--out", str(tmp_path / "refused")])
        assert res.exit_code == 2 and f"--train-also {also}: {said}" in res.output, res.output
    assert not (tmp_path / "refused").exists()
    # the same from a config file, and a folder that is not a dataset
    missing = str(tmp_path / "none")
    for also, said in ((btc_days[2], "it is a test dataset"), (missing, f"--train-also: {missing}: not a folder")):
        (tmp_path / "also.json").write_text(json.dumps({"train_also": [also]}))
        res = CliRunner().invoke(main, ["evaluate", "--data", btc_days[2], "--folds", "2", "--config",
                                        str(tmp_path / "also.json"), "--out", str(tmp_path / "refused")])
        assert res.exit_code == 2 and said in res.output, res.output
