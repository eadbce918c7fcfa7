"""`trader train`'s defaults on the trader env, per learner: the one declaration the defaults sweep
(benchmarks/sweep_defaults.py and sweep_confirm.py; tables in benchmarks/README.md, "Sweep of `trader
train`'s PPO defaults") sets. A new run on the trader env starts from these, then its config file and
flags (trader.run.lifecycle.resolve_args); a resumed run keeps its own saved arguments. Other envs
(gymnasium tasks, MPE) keep the learner's defaults.

The sweep ran on 2026-12-04 (one H200 host, 16 CPU processes): stage 1, one option at a time over 5
walk-forward folds of 7 Binance datasets (BTC, ETH, NEXO); stage 2, combinations of its best changes and a
check on recordings no stage selected on (Bitstamp BTC/USD 2015, later NEXOUSDT). No change generalized:
the best one (reward scale 10) won on the selection folds by trading in few tests and did not trade on
the held-out data, so these stay the values the learners and the env had before (PPO's learning rate,
entropy coefficient and envs, the env's horizon and reward scale, feature set 1). Tables: benchmarks/README.md.
"""

from __future__ import annotations

TRADER_DEFAULTS: dict[str, dict] = {
    "ppo": {"learning_rate": 2.5e-4, "ent_coef": 0.01, "horizon": 500, "reward_scale": 1.0, "num_envs": 4, "feature_set": 1},
}


def trader_defaults(args_cls) -> dict:
    """The trader-env defaults of the learner whose Args class is `args_cls` (trader.rl.{algo}.Args)."""
    return dict(TRADER_DEFAULTS.get(args_cls.__module__.rsplit(".", 1)[-1], {}))
