"""The committee of trained agents (trader.rl.committee): the vote on known cases and its properties, members that
cannot vote together refused by name, and the committee through `trader backtest` and `trader evaluate`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import quoting_config
from trader.cli import main
from trader.evaluate.summary import KEY
from trader.rl.committee import committee, vote
from trader.rl.policy import TrainedPolicy
from trader.sim import spec

QUOTE = {**spec.defaults(), "actions": "quote"}
L = QUOTE["quote_levels"]


def _quotes(*sides, flatten=()) -> np.ndarray:
    """Members' quote actions [members, 1] from (bid_idx, ask_idx) pairs, each flattening if in `flatten`."""
    return np.array([[spec.encode_quote(b, a, i in flatten, quote_levels=L) for i, (b, a) in enumerate(sides)]]).T


def _decoded(action: np.ndarray, config=QUOTE) -> tuple:
    return spec.decode_quote(int(action[0]), quote_levels=config["quote_levels"])


def test_quote_vote_on_known_cases():
    cfg = {**QUOTE, "quote_flatten": True}
    assert _decoded(vote(_quotes((0, 0), (1, 1), (L, L)), cfg)) == (1, 1, False)  # the median offset
    assert _decoded(vote(_quotes((0, 0), (L, L), (L, L)), cfg)) == (L, L, False)  # most abstain: no quote
    assert _decoded(vote(_quotes((0, 0), (0, 0), (L, L), (L, L)), cfg)) == (L, L, False)  # two of four: no majority
    assert _decoded(vote(_quotes((0, 0), (0, 0), (0, 0), (L, L)), cfg)) == (0, 0, False)
    assert _decoded(vote(_quotes((0, 1), (2, 0), (1, L)), cfg)) == (1, 1, False)  # per side
    assert _decoded(vote(_quotes((0, L), (0, L), (L, 0)), cfg)) == (0, L, False)  # a one-sided majority
    assert _decoded(vote(_quotes((L, L), (L, L), (L, L), flatten=(0, 1)), cfg)) == (L, L, True)
    assert _decoded(vote(_quotes((L, L), (L, L), (L, L), (L, L), flatten=(0, 1)), cfg)) == (L, L, False)


def test_signed_votes_on_known_cases():
    discrete = {**QUOTE, "actions": "discrete"}  # 0 hold, 1 buy, 2 sell
    for members, want in (([1, 1, 2], 1), ([1, 0, 2], 0), ([1, 1, 2, 2], 0), ([2, 2, 0], 2), ([1, 1, 1, 0], 1),
                          ([0, 0, 1], 0)):
        assert vote(np.array(members)[:, None], discrete)[0] == want, members
    continuous = {**QUOTE, "actions": "continuous"}  # target position in [-1, 1]
    for members, want in (([0.5, 0.2, -0.3, 0.9], 0.2), ([-0.5, -0.2, 0.3], -0.2), ([-0.5, 0.5], 0.0),
                          ([0.4, 0.6], 0.4), ([-0.9, -0.4, -0.1, 0.7], -0.1)):
        got = vote(np.array(members, dtype=np.float32)[:, None, None], continuous)
        assert got.shape == (1, 1) and got[0, 0] == pytest.approx(want), members
    qc = {**QUOTE, "actions": "quote_continuous", "quote_flatten": True}  # x per side: higher is wider; x > 0 flattens
    got = vote(np.array([[[-0.9, 0.2, 0.5]], [[0.1, -0.5, -0.5]], [[0.5, 0.9, 0.6]]], dtype=np.float32), qc)
    assert got.tolist() == [[pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.5)]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, L), st.integers(0, L)), min_size=1, max_size=8), st.randoms())
def test_a_side_is_quoted_only_when_a_strict_majority_quotes_it(sides, rnd):
    got = _decoded(vote(_quotes(*sides), QUOTE))
    for side in (0, 1):
        offers = [s[side] for s in sides]
        quoting = [o for o in offers if o < L]
        assert (got[side] < L) == (len(quoting) * 2 > len(offers))
        if got[side] < L:  # at the tightest offset a strict majority quotes at least as tight
            assert sum(o <= got[side] for o in offers) * 2 > len(offers)
            assert not any(sum(o <= t for o in offers) * 2 > len(offers) for t in range(got[side]))
    shuffled = list(sides)
    rnd.shuffle(shuffled)
    assert _decoded(vote(_quotes(*shuffled), QUOTE)) == got  # the members' order does not matter
    assert _decoded(vote(_quotes(*sides[:1]), QUOTE)) == (*sides[0], False)  # one member: itself


def test_votes_keep_the_batch_and_agent_shape():
    proposals = np.array([[[1, 2], [0, 1]], [[1, 2], [2, 1]], [[2, 0], [0, 1]]])  # members x envs x agents
    assert vote(proposals, {**QUOTE, "actions": "discrete"}).tolist() == [[1, 2], [0, 1]]


def _member(checkpoint: str, **args) -> TrainedPolicy:
    return TrainedPolicy(lambda obs: np.zeros(len(obs), dtype=np.int64), "ppo",
                         {"actions": "quote", "data": "d", "train_fraction": 0.7, **args},
                         {"obs_dim": 4, "num_actions": 36, "action_dim": 1}, checkpoint)


def test_members_that_cannot_vote_together_are_refused_by_name():
    assert committee([_member("a")]).checkpoint == "a"  # one member: that member
    assert committee([_member("a"), _member("b")]).checkpoint == "committee of 2: a, b"
    with pytest.raises(ValueError, match=r"^b: not of one committee with a: it differs in train_fraction \(0.7 there, "
                                         r"0.8 here\)"):
        committee([_member("a"), _member("b", train_fraction=0.8)])  # its held-out rows would be another's training
    with pytest.raises(ValueError, match="c: .*env option taker_fee_bps"):
        committee([_member("a"), _member("b"), _member("c", taker_fee_bps=3.0)])
    with pytest.raises(ValueError, match="at least one member"):
        committee([])


def _train(tmp_path, seed: int, *extra) -> str:
    res = CliRunner().invoke(main, ["train", "--algo", "ppo", "--actions", "quote", "--total-timesteps", "1024",
                                    "--num-envs", "4", "--horizon", "100", "--config", quoting_config(tmp_path),
                                    "--runs-dir", str(tmp_path / "runs"), "--no-progress-bar", "--seed", str(seed),
                                    *extra])
    assert res.exit_code == 0, res.output
    return res.output.split("run folder: ")[1].split()[0]


def test_backtest_of_a_committee(tmp_path):
    """Three copies of one agent vote as that agent (the same report numbers); three seeds trade as one agent;
    members trained on other rows are refused with the flag named."""
    runner = CliRunner()
    runs = [_train(tmp_path, s) for s in (0, 1, 2)]

    def backtest(*checkpoints, out):
        res = runner.invoke(main, ["backtest", *[x for c in checkpoints for x in ("--checkpoint", c)],
                                   "--out", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        return json.loads((tmp_path / out / "backtest.json").read_text())

    one, same = backtest(runs[0], out="one"), backtest(runs[0], runs[0], runs[0], out="same")
    assert same["results"] == one["results"] and one["results"]["ppo"]["trades"] > 0
    assert same["context"]["checkpoint"] == ", ".join([runs[0]] * 3)
    three = backtest(*runs, out="three")
    assert three["context"]["checkpoint_read"].startswith("committee of 3: ")
    assert {k: v for k, v in three["results"].items() if k != "ppo"} == {k: v for k, v in one["results"].items()
                                                                        if k != "ppo"}  # the same baselines
    other = _train(tmp_path, 3, "--train-fraction", "0.5")
    res = runner.invoke(main, ["backtest", "--checkpoint", runs[0], "--checkpoint", other])
    assert res.exit_code == 2 and "--checkpoint" in res.output and "train_fraction (0.7 there, 0.5 here)" in res.output, \
        res.output
    # trader live runs the same committee (its policy and the env options it reads from the members' runs)
    from trader.live.policy import load_policy

    single, live = load_policy(runs[0]), load_policy(runs)
    assert live.env == single.env and live.name.startswith("ppo:committee of 3: ")
    obs = np.random.default_rng(0).normal(size=(64, single.obs_dim)).astype(np.float32)
    members = np.stack([load_policy(r).act(obs) for r in runs])
    assert (live.act(obs) == vote(members, {**spec.defaults(), **live.env})).all()
    res = runner.invoke(main, ["live", "--checkpoint", runs[0], "--checkpoint", "scripted:buy", "--duration", "1"])
    assert res.exit_code == 2 and "--checkpoint" in res.output and "scripted" in res.output, res.output


def test_evaluate_tests_the_committee_of_its_seeds(tmp_path):
    """With 3 seeds every fold also tests their committee, reported per fold, over the blocks and against the seeds'
    mean block for block; without a member's weights (job files gathered from elsewhere) the report says so."""
    def evaluate(*extra):
        res = CliRunner().invoke(main, ["evaluate", "--folds", "2", "--seeds", "3", "--total-timesteps", "1024",
                                        "--num-envs", "4", "--horizon", "100", "--actions", "quote",
                                        "--config", quoting_config(tmp_path), "--out", str(tmp_path / "ev"),
                                        "--no-progress-bar", *extra])
        assert res.exit_code == 0, res.output
        return json.loads((tmp_path / "ev" / "evaluation.json").read_text()), (tmp_path / "ev" / "evaluation.md").read_text()

    report, md = evaluate()
    overall, folds = report["summary"]["overall"], report["summary"]["folds"]
    com = overall["committee"]
    assert com["seeds"] == [0, 1, 2]
    assert com["per_block"] == [f["strategies"]["committee"][KEY] for f in folds]
    assert com["total"] == pytest.approx(sum(com["per_block"]))
    seeds_mean = [np.mean([m[KEY] for j in report["jobs"] if j["fold"] == f["fold"] for m in j["metrics"]])
                  for f in folds]
    assert com["minus_seeds_mean"]["mean"] == pytest.approx(np.mean(np.subtract(com["per_block"], seeds_mean)))
    assert report["committees"]["1"]["metrics"][0][KEY] == com["per_block"][0]
    assert "committee of seeds [0, 1, 2]" in md and "| committee |" in md
    assert any(m["trades"] > 0 for j in report["jobs"] for m in j["metrics"])  # agents that quote: a real vote
    without, md = evaluate("--resume", "--no-committee")
    assert "committee" not in without["summary"]["overall"] and "committee" not in md
    assert without["summary"]["overall"]["agent"] == overall["agent"]
    seed_1 = next(j for j in report["jobs"] if j["fold"] == 2 and j["seed"] == 1)
    shutil.rmtree(tmp_path / "ev" / "fold_2" / seed_1["run_dir"].rsplit("/", 1)[1])
    gathered, md = evaluate("--resume")
    assert "no weights of seed 1" in gathered["summary"]["overall"]["committee"]["untested"]["2"]
    assert "committee of the seeds: not tested (fold 2: no weights of seed 1" in md
    assert "- committee: not tested, no weights of seed 1" in md
