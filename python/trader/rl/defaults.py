"""`trader train`'s defaults on the trader env, per learner: the one declaration the defaults sweep
(benchmarks/sweep_defaults.py, table in benchmarks/README.md "Defaults sweep") sets. A new run on the
trader env starts from these, then its config file and flags (trader.run.lifecycle.resolve_args); a
resumed run keeps its own saved arguments. Other envs (gymnasium tasks, MPE) keep the learner's defaults.

Until the sweep has run on the GPU these are the values the learners and the env had before (PPO's
learning rate, entropy coefficient and envs, the env's horizon and reward scale, feature set 1).
"""

from __future__ import annotations

TRADER_DEFAULTS: dict[str, dict] = {
    "ppo": {"learning_rate": 2.5e-4, "ent_coef": 0.01, "horizon": 500, "reward_scale": 1.0, "num_envs": 4, "feature_set": 1},
}


def trader_defaults(args_cls) -> dict:
    """The trader-env defaults of the learner whose Args class is `args_cls` (trader.rl.{algo}.Args)."""
    return dict(TRADER_DEFAULTS.get(args_cls.__module__.rsplit(".", 1)[-1], {}))
