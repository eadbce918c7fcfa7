"""The policy a live session runs, and the env settings it was trained with.

``load_policy(spec)``:

* a checkpoint of ``trader train`` (a run folder, its checkpoint store or one checkpoint in it), or a list of
  them (their committee, ``trader.rl.committee``): its policy (``trader.rl.policy.load``) and what the run says
  about its env, read as ``trader backtest``
  reads it (``trader.backtest.engine.env_config_from_run``: action kind, sizes in base units or in quote
  currency, quote grid, fees, queue model, ...; the horizon too, for the time-left feature), its
  feature set (``trader.sim.features.run_set``), grid interval and encoder, so that live observes and
  acts as it was trained;
* ``scripted:NAME`` for rehearsals and tests, where the observation is ignored: ``hold``, ``buy``,
  ``sell``, ``alternate`` (buy, sell, buy, ...), ``cycle`` (buy, hold, sell, hold, ...);
* a Python callable ``obs [B, D] -> actions [B]`` (tests, notebooks).

What an action means (the orders it implies) is the env's business: the session hands it to the
execution kernel (``trader.live.kernel``), which is the training env itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from trader.sim import features
from trader.sim import spec as env_spec

SCRIPTED = {
    "hold": (0,),
    "buy": (1,),
    "sell": (2,),
    "alternate": (1, 2),
    "cycle": (1, 0, 2, 0),
}
# Env options live does not take from the policy: the market's grid, the episode window, the agent count.
NOT_FROM_POLICY = ("tick_size", "lot_size", "start_min", "start_max", "num_agents")


@dataclass
class PolicySpec:
    act: Callable[[np.ndarray], np.ndarray]
    name: str
    env: dict = field(default_factory=dict)  # env options (trader.sim.spec), checked; see load_policy
    depth: int = 10
    interval_ms: float = 100.0
    obs_dim: int | None = None  # None: any (scripted policies)
    num_agents: int = 1  # MADDPG checkpoints: the observation is given to every agent, agent 0 acts
    encoder: str | None = None  # the encoder folder the agent was trained with (trader train --encoder)
    encoder_sha256: str | None = None  # and the sha256 of its files (trader.nn.embed.checkpoint_sha256)
    encoder_with_features: bool = False  # the book features of feature_set beside the embeddings (trader train's)
    feature_set: int = features.DEFAULT_SET  # trader.sim.features; scripted and callable policies: the default

    @property
    def continuous(self) -> bool:
        return self.env["actions"] in ("continuous", "quote_continuous")

    @property
    def sizes_in_quote(self) -> bool:
        """Sizes in quote currency (trade_notional, max_position_notional): lots at the first row's mid."""
        return self.env["trade_notional"] > 0

    @property
    def max_position(self) -> float | None:
        """|position| limit, base units; None when the sizes are in quote currency (known at the first row)."""
        return None if self.sizes_in_quote else float(self.env["max_position"])

    @property
    def trade_size(self) -> float | None:
        return None if self.sizes_in_quote else float(self.env["trade_size"])

    def action(self, obs: np.ndarray):
        """The action for one observation: an int (discrete, quote) or a float array (continuous modes)."""
        batch = obs[None] if self.num_agents == 1 else np.repeat(obs[None, None], self.num_agents, axis=1)
        a = np.asarray(self.act(batch))
        a = a[0] if a.ndim >= 1 else a
        if self.num_agents > 1:
            a = np.asarray(a)[0]
        a = np.asarray(a).reshape(-1)
        return np.clip(a.astype(np.float32), -1.0, 1.0) if self.continuous else int(a[0])


def _scripted(name: str) -> Callable:
    try:
        seq = SCRIPTED[name]
    except KeyError:
        raise ValueError(f"scripted policy {name!r}: expected one of {', '.join(SCRIPTED)}") from None
    it = itertools.cycle(seq)

    def act(obs: np.ndarray) -> np.ndarray:
        return np.array([next(it) for _ in range(len(obs))], dtype=np.int64)

    return act


def load_policy(spec, *, trade_size: float | None = None, max_position: float | None = None,
                continuous: bool | None = None, horizon: int | None = None, env: dict | None = None,
                device: str = "cpu") -> PolicySpec:
    """A PolicySpec from a checkpoint path, ``scripted:NAME``, a callable or a PolicySpec; the keyword
    arguments (and `env`, more env options such as the move guard's) override what the checkpoint says (or
    the env's defaults)."""
    given = {"trade_size": trade_size, "max_position": max_position, "horizon": horizon,
             "actions": None if continuous is None else ("continuous" if continuous else "discrete"), **(env or {})}
    over = {k: v for k, v in given.items() if v is not None}
    if isinstance(spec, PolicySpec):
        spec.env = env_spec.check_config(**spec.env | over)
        return spec
    if callable(spec) or str(spec).startswith("scripted:"):
        env = env_spec.check_config(**over)
        if callable(spec):
            return PolicySpec(spec, getattr(spec, "__name__", "callable"), env)
        return PolicySpec(_scripted(str(spec).split(":", 1)[1]), str(spec), env)
    from trader.backtest.engine import env_config_from_run
    from trader.rl.committee import load_committee

    # weights and metadata only; a ValueError unless trained on the trading env (every member of a committee alike)
    trained = load_committee([str(s) for s in spec] if isinstance(spec, (list, tuple)) else [str(spec)], device)
    args = trained.args
    if args.get("trade_notional") and (trade_size is not None or max_position is not None):
        given = f"--trade-size {trade_size:g}" if trade_size is not None else f"max_position {max_position:g}"
        raise ValueError(f"{given} (base units): {spec} sizes its orders in quote currency (trade_notional "
                         f"{args['trade_notional']:g}, max_position_notional {args.get('max_position_notional', 0):g}); "
                         "leave its sizes as trained (--max-position still caps the position as a risk limit)")
    # the env options as trader backtest reads them; live keeps the run's horizon (the time-left feature)
    env = env_spec.check_config(**env_config_from_run(args, horizon=args.get("horizon")) | over)
    # named by the step read: after a fallback from a corrupt latest checkpoint, the older one
    return PolicySpec(trained.act, f"{trained.algo}:{trained.checkpoint}", env, obs_dim=int(trained.spec["obs_dim"]),
                      interval_ms=float(args.get("interval_ms", 100.0)),
                      num_agents=int(trained.spec.get("num_agents", 1)), encoder=args.get("encoder"),
                      encoder_sha256=args.get("encoder_sha256"),
                      encoder_with_features=bool(args.get("encoder_with_features")), feature_set=features.run_set(args))
