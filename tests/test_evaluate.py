"""trader evaluate: folds that never leak, seeds that reproduce, bootstrap intervals on known cases,
clear errors on bad input, the report; on the bundled sample and real recordings of ../shared/data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared
from trader.cli import main
from trader.evaluate.evaluation import Evaluation, EvaluationError
from trader.evaluate.folds import block_folds, train_fraction
from trader.evaluate.run import resolved_args, train_and_test
from trader.evaluate.stats import bootstrap_mean
from trader.rl.envs import make_env

TINY = {"total_timesteps": 1024, "num_envs": 4, "num_steps": 64, "horizon": 100}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Real recordings converted once: Binance spot ETHUSDT 08-08 (6 min of diffs) and Tardis's
    5-level Binance futures book snapshots."""
    out = tmp_path_factory.mktemp("data")
    runner = CliRunner()
    for name, raw in (("eth", ("binance_hftbacktest_raw_feed", "spot", "ethusdt_20240808.gz")),
                      ("book5", ("tardis_csv_samples", "binance-futures_book_snapshot_5_BTCUSDT.csv"))):
        res = runner.invoke(main, ["data", "convert", str(shared(*raw)), "-o", str(out / name)])
        assert res.exit_code == 0, res.output
    return out


def plan(tmp_path, datasets=(None,), **kw):
    args = dict(split="blocks", folds=2, gap=0, seeds=2, base_seed=7, algo="ppo", options=dict(TINY), config=None,
                device="cpu", out_dir=tmp_path / "ev")
    args.update(kw)
    return Evaluation.plan(list(datasets), **args)


# ---- folds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gap", [0, 37])
def test_training_episodes_never_reach_a_test_row(tmp_path, converted, gap):
    """Build each fold's training env from exactly the arguments its run gets and step it through many
    episodes with random actions: the highest row it shows stays below the fold's test block (by the gap)."""
    ev = plan(tmp_path, [converted / "eth"], folds=3, gap=gap, seeds=1)
    assert len(ev.folds) == 3
    rng = np.random.default_rng(0)
    for job in ev.jobs:
        args = resolved_args(job)
        env = make_env(args, num_envs=16, seed=job.seed)
        obs, info = env.reset(seed=job.seed)
        highest = int(info["t"].max())
        for _ in range(3 * args.horizon):
            obs, _, _, _, info = env.step(rng.integers(0, 3, size=16))
            highest = max(highest, int(info["t"].max()))
        f = job.fold
        assert highest <= f.test_start - gap - 1 < f.test_start
        # the last row the env may reach is exactly the last training row: nothing is wasted either
        assert env.env_config["start_max"] + args.horizon == f.train_rows - 1 == f.test_start - gap - 1
        env.close()
    # test blocks tile the rows after the first block, in time order
    assert [(f.test_start, f.test_end) for f in ev.folds] == list(zip(
        [f.test_start for f in ev.folds], [f.test_start for f in ev.folds[1:]] + [ev.folds[-1].test_end]))


def test_train_fraction_lands_on_the_fold_boundary_for_every_row_count():
    for rows in (101, 997, 3599, 123_457):
        for f in block_folds("d", rows, 4, horizon=10):
            assert int(rows * train_fraction(f, rows)) == f.train_rows


# ---- seeds ---------------------------------------------------------------------------------------


def test_seeds_reproduce_and_differ(tmp_path):
    ev = plan(tmp_path, seeds=2)
    a, b = ev.jobs[0], ev.jobs[1]
    first, again, other = train_and_test(a), train_and_test(a), train_and_test(b)
    assert np.array_equal(first.equity, again.equity) and np.array_equal(first.actions, again.actions)
    assert first.metrics["run_dir"] != again.metrics["run_dir"]
    assert first.name == "ppo_seed7" and other.name == "ppo_seed8"
    from trader.run.checkpoints import load_checkpoint

    wa, wa2, wb = (load_checkpoint(r.metrics["run_dir"], state=False) for r in (first, again, other))
    assert wa.metadata["args"]["seed"] == 7 and wb.metadata["args"]["seed"] == 8
    assert _same_weights(wa.weights, wa2.weights) and not _same_weights(wa.weights, wb.weights)


def _same_weights(a, b) -> bool:
    import torch

    flat = lambda w: {f"{m}/{k}": v for m, d in w.items() for k, v in d.items()}  # noqa: E731
    fa, fb = flat(a), flat(b)
    return fa.keys() == fb.keys() and all(torch.equal(torch.as_tensor(fa[k]), torch.as_tensor(fb[k])) for k in fa)


# ---- bootstrap -----------------------------------------------------------------------------------


def test_bootstrap_known_cases():
    assert bootstrap_mean([2.5] * 7) == (2.5, 2.5, 2.5, 7)  # no spread, no interval
    x = np.random.default_rng(3).normal(1.0, 2.0, 2000)
    ci = bootstrap_mean(x)
    half = 1.96 * x.std() / np.sqrt(len(x))  # the normal approximation for a large sample
    assert ci.mean == pytest.approx(x.mean())
    assert ci.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.1 * half)
    # two stages: seeds that agree within each fold leave only the folds' spread: the two fold means
    two = bootstrap_mean(np.array([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]]))
    assert (two.mean, two.low, two.high, two.n) == (2.0, 1.0, 3.0, 6)
    # deterministic by seed, and the level widens the interval
    assert bootstrap_mean(x, seed=5) == bootstrap_mean(x, seed=5)
    assert bootstrap_mean(x, level=0.99).high > ci.high
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_mean([])


# ---- bad input -----------------------------------------------------------------------------------


def test_a_dataset_too_short_for_the_folds_is_named(tmp_path, converted):
    res = CliRunner().invoke(main, ["evaluate", "--data", str(converted / "eth"), "--folds", "40", "--horizon", "200",
                                    "--out", str(tmp_path / "ev")])
    assert res.exit_code == 2
    assert "dataset eth" in res.output and "--horizon 200" in res.output and "lower --folds" in res.output


def test_mismatched_depth_is_named(tmp_path, converted):
    with pytest.raises(EvaluationError, match=r"dataset book5 .*5 levels a side.*observe 10: mismatched depth"):
        plan(tmp_path, [converted / "eth", converted / "book5"])


def test_datasets_split_needs_two_and_refuses_folds_over_several(tmp_path, converted):
    with pytest.raises(EvaluationError, match="give two or more --data folders"):
        plan(tmp_path, [converted / "eth"], split="datasets")
    # fold 2 would train on two datasets: refused until multi-dataset training lands
    with pytest.raises(EvaluationError, match=r"fold_2: trains on 2 datasets \(sample, eth\)"):
        plan(tmp_path, [None, converted / "eth", converted / "eth"], split="datasets", options=dict(TINY, horizon=50))


def test_evaluate_refuses_agents_sharing_a_book(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", "--algo", "maddpg", "--num-agents", "2", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "one agent per seed" in res.output


# ---- the command and its report -----------------------------------------------------------------


def _fee_flag() -> str:
    """train's taker fee flag (--fee-bps, or --taker-fee-bps once the options come from the spec table)."""
    from trader.rl.cli import train

    (flag,) = [p.opts[0] for p in train.params if p.name in ("fee_bps", "taker_fee_bps")]
    return flag


def test_evaluate_on_the_sample_writes_the_report(tmp_path):
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["evaluate", "--folds", "2", "--seeds", "3", "--seed", "4", "--total-timesteps",
                                    "1024", "--num-envs", "4", "--horizon", "100", _fee_flag(), "2",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "evaluation.json").read_text())
    assert [f["name"] for f in doc["folds"]] == ["sample_fold_1", "sample_fold_2"]
    for f in doc["folds"]:
        assert [a["name"] for a in f["agents"]] == ["ppo_seed4", "ppo_seed5", "ppo_seed6"]
        s = f["summary"]
        assert set(s["baselines"]) == {"buy_and_hold", "flat", "order_imbalance"}
        pnl = [a["pnl_quote"] for a in f["agents"]]
        ci = s["agent"]["pnl_quote"]
        assert ci["mean"] == pytest.approx(np.mean(pnl)) and ci["ci95_low"] <= ci["mean"] <= ci["ci95_high"]
        assert min(pnl) <= ci["ci95_low"] and ci["ci95_high"] <= max(pnl)
        best = max(s["baselines"].values(), key=lambda m: m["pnl_quote"])["pnl_quote"]
        assert s["agent_minus_best_baseline"]["pnl_quote"]["mean"] == pytest.approx(np.mean(pnl) - best)
        assert s["beat_flat"] == pytest.approx(np.mean([p > s["baselines"]["flat"]["pnl_quote"] for p in pnl]))
        assert f["test_start"] == f["train_rows"] and f["interval_s"] == 0.1
        assert sum(f["agents"][0]["action_distribution"].values()) == pytest.approx(1.0)
        # buy and hold pays the 2 bps taker fee on what it bought
        bh = s["baselines"]["buy_and_hold"]
        assert bh["taker_fees"] == pytest.approx(2e-4 * bh["taker_volume_quote"], rel=1e-2)
    assert doc["overall"]["folds"] == 2 and doc["overall"]["seeds"] == 3
    assert doc["context"]["taker_fee_bps"] == 2.0
    md = (out / "evaluation.md").read_text()
    assert "taker fee 2 bps" in md and "order latency 0 ms" in md and "2024-08-08" in md
    assert "net PnL (USDT)" in md and "bps of max notional" in md and "ppo minus each fold's best baseline" in md
    assert "Sharpe: mean / std of the PnL change per 0.1 s step" in md and "Sharpe (annualized)" not in md
    for png in ("overall.png", "actions.png", "sample_fold_1_equity.png", "sample_fold_2_actions.png"):
        assert (out / png).stat().st_size > 5_000
    assert len(list((out / "runs" / "sample_fold_2").iterdir())) == 3


def test_results_do_not_depend_on_the_number_of_jobs(tmp_path):
    one = plan(tmp_path / "one", folds=1, seeds=2).run(jobs=1, progress=False)
    two = plan(tmp_path / "two", folds=1, seeds=2).run(jobs=2, progress=False)
    pick = lambda doc: [(a["name"], a["pnl_quote"], a["trades"]) for a in doc["folds"][0]["agents"]]  # noqa: E731
    assert pick(one) == pick(two)


def test_evaluate_with_an_encoder_trains_and_tests_on_its_embeddings(tmp_path):
    """--encoder RUN/MODEL passes through to train: every agent observes the embeddings (its policy's
    obs_dim is the embedding's plus the account features) and its run records the encoder."""
    r = CliRunner().invoke(main, ["train-encoder", "--out", str(tmp_path / "enc"), "--model", "tcn", "--epochs", "1",
                                  "--max-steps-per-epoch", "2", "--seeds", "0", "--window", "50", "--horizons",
                                  "10,20", "--device", "cpu", "--no-baselines"])
    assert r.exit_code == 0, r.output
    encoder = tmp_path / "enc" / "tcn" / "best"
    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["evaluate", "--folds", "1", "--seeds", "1", "--encoder", str(encoder),
                                    "--total-timesteps", "512", "--num-envs", "2", "--horizon", "100", "--out", str(out)])
    assert res.exit_code == 0, res.output
    from trader.rl.policy import load

    doc = json.loads((out / "evaluation.json").read_text())
    (agent,) = doc["folds"][0]["agents"]
    trained = load(agent["run_dir"])
    dim = json.loads((encoder / "config.json").read_text())["train"]["embedding_dim"]
    assert trained.spec["obs_dim"] == dim + 3 and trained.args["encoder"] == str(encoder)
    from trader.sim import load_market

    rows = len(load_market().book)
    assert trained.args["train_fraction"] * rows == pytest.approx(doc["folds"][0]["train_rows"] + 0.5)
    assert "encoder " + str(encoder) in (out / "evaluation.md").read_text()
