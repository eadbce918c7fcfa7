"""The policy a live session runs, and how its actions become orders.

``load_policy(spec)``:

* a checkpoint of ``trader train`` (a run folder, its checkpoint store or one checkpoint in it): its
  policy (``trader.rl.policy.load``) and the env settings saved with it (trade size, max position,
  action kind, horizon), so that live acts on the scale it was trained on;
* ``scripted:NAME`` for rehearsals and tests, where the observation is ignored: ``hold``, ``buy``,
  ``sell``, ``alternate`` (buy, sell, buy, ...), ``cycle`` (buy, hold, sell, hold, ...);
* a Python callable ``obs [B, D] -> actions [B]`` (tests, notebooks).

Actions follow the training env (``order_from_action`` in ``cpp/env/trading_env.cpp``): discrete
0 hold, 1 buy ``trade_size``, 2 sell ``trade_size``, relative to the position expected once orders in
flight are done; continuous ``a`` in [-1, 1] targets ``a * max_position``; the target is clamped to
[-max_position, max_position].
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SCRIPTED = {
    "hold": (0,),
    "buy": (1,),
    "sell": (2,),
    "alternate": (1, 2),
    "cycle": (1, 0, 2, 0),
}


@dataclass
class PolicySpec:
    act: Callable[[np.ndarray], np.ndarray]
    name: str
    continuous: bool = False
    trade_size: float = 0.01  # base units per discrete order
    max_position: float = 0.1  # base units; the scale of the position feature and of continuous targets
    horizon: int = 500
    depth: int = 10
    interval_ms: float = 100.0
    obs_dim: int | None = None  # None: any (scripted policies)
    num_agents: int = 1  # MADDPG checkpoints: the observation is given to every agent, agent 0 acts
    encoder: str | None = None  # the encoder folder the agent was trained with (trader train --encoder)
    encoder_sha256: str | None = None  # and the sha256 of its files (trader.nn.embed.checkpoint_sha256)

    def action(self, obs: np.ndarray):
        batch = obs[None] if self.num_agents == 1 else np.repeat(obs[None, None], self.num_agents, axis=1)
        a = np.asarray(self.act(batch))
        a = a[0] if a.ndim >= 1 else a
        if self.num_agents > 1:
            a = np.asarray(a)[0]
        a = np.asarray(a).reshape(-1)
        return float(a[0]) if self.continuous else int(a[0])

    def target(self, action, expected: float) -> float | None:
        """Target position (base units) for an action, or None for hold."""
        if self.continuous:
            target = float(np.clip(action, -1.0, 1.0)) * self.max_position
        elif action == 1:
            target = expected + self.trade_size
        elif action == 2:
            target = expected - self.trade_size
        else:
            return None
        return float(np.clip(target, -self.max_position, self.max_position))


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
                continuous: bool | None = None, horizon: int | None = None, device: str = "cpu") -> PolicySpec:
    """A PolicySpec from a checkpoint path, ``scripted:NAME`` or a callable; the keyword arguments
    override what the checkpoint says (or the defaults)."""
    given = {"trade_size": trade_size, "max_position": max_position, "continuous": continuous, "horizon": horizon}
    over = {k: v for k, v in given.items() if v is not None}
    if callable(spec):
        return PolicySpec(spec, getattr(spec, "__name__", "callable"), **over)
    spec = str(spec)
    if spec.startswith("scripted:"):
        return PolicySpec(_scripted(spec.split(":", 1)[1]), spec, **over)
    from trader.rl.policy import load
    from trader.sim.spec import from_legacy

    trained = load(spec, device)  # weights and metadata only; a ValueError unless trained on the trading env
    args = from_legacy({k: v for k, v in trained.args.items() if v is not None})  # older runs' names too
    settings = {"continuous": args.get("actions") == "continuous", "trade_size": float(args.get("trade_size", 0.01)),
                "max_position": float(args.get("max_position", 0.1)), "horizon": int(args.get("horizon", 500)),
                "interval_ms": float(args.get("interval_ms", 100.0))}
    settings.update(over)
    # named by the step read: after a fallback from a corrupt latest checkpoint, the older one
    return PolicySpec(trained.act, f"{trained.algo}:{trained.checkpoint}", obs_dim=int(trained.spec["obs_dim"]),
                      num_agents=int(trained.spec.get("num_agents", 1)), encoder=args.get("encoder"),
                      encoder_sha256=args.get("encoder_sha256"), **settings)
