"""A committee of trained agents that trades as one: at every step each member proposes its deterministic action
and the committee takes what a strict majority of them backs, component by component.

    trained = load_committee(["runs/a", "runs/b", "runs/c"])  # a TrainedPolicy, as trader.rl.policy.load gives
    actions = trained.act(obs)

Agents of one recipe that differ only in their seed disagree most where the training rows said least, and one
seed's idiosyncratic habit (a side it learned to hold, a regime it quotes into) can cost more than the others earn:
in session 18's finer blocks one NEXOUSDT seed of five lost -471 bps of max notional in one block where the other
four stayed near flat (benchmarks/README.md, "Across test blocks"). Voting over the members' actions is the ensemble
of Wiering and van Hasselt (2008, "Ensemble algorithms in reinforcement learning", IEEE Trans. SMC-B 38(4)): it
needs only each member's action, so members of any learner with the same action space combine. Here every action
is ordered, so the vote is an order statistic that only a strict majority can move:

- `quote` (and `quote_continuous`): per side, the tightest offset at which a strict majority of the members
  would quote at least as tight; a side stays unquoted unless a strict majority quotes it (no quote ranks as the
  widest offset). The flatten flag is set when a strict majority sets it.
- `discrete` (hold / buy / sell) and `continuous` (target position in [-1, 1]): the signed vote: buy (or a
  target above 0) only as far as a strict majority goes, sell likewise, else hold (0). With an odd number of
  members that is the median; with an even number, of the two middle values the one nearer 0 (or 0 between them).

So the committee never acts where most members abstain, and with one member it is that member. A larger committee
is not a better estimate of its members' mean: members that quote only where training raised a quote above abstaining
(PPO's abstain_prior) rarely quote at the same step, so more of them back a quote less often. Ten seeds of issue 13's
loss-weight recipe traded 18 times over 22 test blocks as a committee, flat by abstaining, where their own tests
traded in 100 of 220; five committees of five seeds of the same recipe made +4.13 bps of max notional a block
together, above their 25 seeds' mean of +2.60 (benchmarks/README.md, sessions 28 and 29).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from trader.rl.policy import TrainedPolicy, load

COMMITTEE_MIN_SEEDS = 3
"""the fewest members a committee of seeds is made of (trader evaluate, trader train --committee): a vote of two
members is a veto, of one the agent itself"""
OBSERVATION_ARGS = ("feature_set", "encoder", "encoder_sha256", "interval_ms")
"""what a member observes besides the env options (trader.rl.policy.observation_market), and whether its encoder's
embeddings come with the book features (encoder_with_features, which runs before session 24 did not record)"""
TRAINING_ROWS_ARGS = ("data", "train_fraction", "train_also")
"""what a member trained on: a committee's held-out rows must be held out for every member"""


def strict_majority_below(proposals: np.ndarray) -> np.ndarray:
    """Per component of proposals [members, ...]: the smallest x such that a strict majority proposes at most x
    (the upper median)."""
    return np.sort(proposals, axis=0)[len(proposals) // 2]


def strict_majority_above(proposals: np.ndarray) -> np.ndarray:
    """Per component: the largest x such that a strict majority proposes at least x (the lower median)."""
    return np.sort(proposals, axis=0)[(len(proposals) - 1) // 2]


def signed_vote(proposals: np.ndarray) -> np.ndarray:
    """Per component of signed proposals: as far above 0 as a strict majority goes, else as far below, else 0."""
    up, down = strict_majority_above(proposals), strict_majority_below(proposals)
    return np.where(up > 0, up, np.where(down < 0, down, np.zeros_like(up)))


DISCRETE_SIGN = np.array([0, 1, -1])  # the discrete env's actions: 0 hold, 1 buy, 2 sell
DISCRETE_OF_SIGN = np.array([2, 0, 1])  # indexed by sign + 1


def vote(proposals: np.ndarray, config: dict) -> np.ndarray:
    """The committee's action from its members' proposals [members, *action batch shape] for the env options
    `config` (actions, quote_levels, quote_flatten: trader.sim.spec's names, defaults filled)."""
    proposals = np.asarray(proposals)
    mode = config["actions"]
    if mode == "quote":
        L = int(config["quote_levels"])
        flatten, rest = np.divmod(proposals, (L + 1) ** 2)
        bid, ask = np.divmod(rest, L + 1)
        return (strict_majority_above(flatten) * (L + 1) ** 2 + strict_majority_below(bid) * (L + 1)
                + strict_majority_below(ask)).astype(proposals.dtype)
    if mode == "quote_continuous":  # x per side: a higher x is a wider offset, the top bucket no quote; x > 0 flattens
        out = strict_majority_below(proposals)
        if config["quote_flatten"]:
            out[..., 2] = strict_majority_above(proposals[..., 2])
        return out
    if mode == "discrete":
        return DISCRETE_OF_SIGN[signed_vote(DISCRETE_SIGN[proposals]) + 1].astype(proposals.dtype)
    if mode == "continuous":
        return signed_vote(proposals)
    raise ValueError(f"actions: no vote for {mode!r}")


def committee(members: Sequence[TrainedPolicy]) -> TrainedPolicy:
    """One policy of `members` (trader.rl.policy.TrainedPolicy, all of one learner, env, observation and training
    rows; a ValueError naming the first member that differs and how). Its args and spec are the first member's;
    its checkpoint names them all."""
    from trader.backtest.engine import env_config_from_run
    from trader.sim import spec as env_spec

    if not members:
        raise ValueError("a committee needs at least one member")
    first = members[0]

    def defining(m: TrainedPolicy) -> dict:
        return {"algo": m.algo, **{f"env option {k}": v for k, v in env_config_from_run(m.args).items()},
                **{k: m.args.get(k) for k in (*OBSERVATION_ARGS, *TRAINING_ROWS_ARGS)},
                "encoder_with_features": bool(m.args.get("encoder_with_features")),  # unrecorded: alone
                **{f"policy {k}": m.spec.get(k) for k in ("obs_dim", "num_actions", "action_dim")}}

    ref = defining(first)
    for m in members[1:]:
        mine = defining(m)
        diff = sorted(k for k in ref.keys() | mine.keys() if ref.get(k) != mine.get(k))
        if diff:
            raise ValueError(f"{m.checkpoint}: not of one committee with {first.checkpoint}: it differs in "
                             + "; ".join(f"{k} ({ref.get(k)!r} there, {mine.get(k)!r} here)" for k in diff))
    if len(members) == 1:
        return first
    config = {**env_spec.defaults(), **env_config_from_run(first.args)}
    acts = [m.act for m in members]

    def act(obs: np.ndarray) -> np.ndarray:
        return vote(np.stack([a(obs) for a in acts]), config)

    return TrainedPolicy(act, first.algo, first.args, first.spec,
                         f"committee of {len(members)}: " + ", ".join(m.checkpoint for m in members))


def load_committee(targets: Sequence[str | os.PathLike], device: str = "cpu",
                   env_id: str | None = "trader") -> TrainedPolicy:
    """The committee of the checkpoints `targets` (each as trader.rl.policy.load takes it, or the folder of
    `trader train --committee`: its members); one target: its policy."""
    from trader.run.checkpoints import read_committee

    members = [m for t in targets for m in ((read_committee(t) or {}).get("members") or [t])]
    return committee([load(m, device, env_id) for m in members])
