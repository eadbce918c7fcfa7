"""The trading env's options and output fields, read from the one declaration in the C++ core
(cpp/env/spec.h, exposed as `_core.env_spec()` and `_core.env_outputs()`).

Everything in Python that lists options or outputs builds from here: the gymnasium spaces, the
reference env's config, the info dict of `trader.sim.make`, and (for the lead's wiring) learner
arguments and click options:

    spec.options()            # [Option(name, type, default, unit, doc, choices)]
    spec.defaults()           # {name: default}
    spec.dataclass_fields()   # [(name, type, dataclasses.field(default=..., metadata={...}))]
    spec.check_config(**kw)   # every option, parsed and validated exactly as the C++ pool does
    spec.OUTPUTS              # [Output(name, dtype, per_agent, doc)] in recv() order

Quote actions (`actions="quote"`): one integer per agent,
    action = flatten * (L + 1)**2 + bid_idx * (L + 1) + ask_idx,   L = quote_levels,
with bid_idx, ask_idx in 0..L: index i < L quotes at offset quote_min_ticks + i ticks from the
same-side touch of the observed row (bid = best bid - offset, ask = best ask + offset; offset -1 is
one tick inside the spread); index L = no quote on that side. flatten (0 or 1, only with
quote_flatten=True) also sends a market order that brings the position to 0. Use
`encode_quote` / `decode_quote`. `quote_continuous`: Box(-1, 1, (2,)) or (3,) with quote_flatten;
x in [-1, 1] maps to index floor((x + 1) / 2 * (L + 1)) clipped to L (the top bucket: no quote);
the third value > 0 flattens.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from trader import _core


class Option(NamedTuple):
    name: str
    type: type
    default: Any
    unit: str
    doc: str
    choices: tuple[str, ...] | None


class Output(NamedTuple):
    name: str
    dtype: np.dtype
    per_agent: bool
    doc: str


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}

OPTIONS: tuple[Option, ...] = tuple(
    Option(d["name"], _TYPES[d["type"]], d["default"], d["unit"], d["doc"],
           tuple(d["choices"]) if d["choices"] is not None else None)
    for d in _core.env_spec())
OUTPUTS: tuple[Output, ...] = tuple(
    Output(d["name"], np.dtype(d["dtype"]), bool(d["per_agent"]), d["doc"]) for d in _core.env_outputs())

ACCOUNT_FEATURES = ("position / max position", "unrealized PnL, % of max notional", "fraction of the episode left")
QUOTE_FEATURES = tuple(f"{side} {what}" for side in ("bid", "ask") for what in (
    "has an order", "distance to the touch / quote_levels", "market lots ahead / level size"))


def options() -> tuple[Option, ...]:
    return OPTIONS


def defaults() -> dict[str, Any]:
    return {o.name: o.default for o in OPTIONS}


def dataclass_fields(skip: tuple[str, ...] = ("tick_size", "lot_size", "start_min", "start_max")) -> list:
    """Fields for `dataclasses.make_dataclass`: (name, type, field(default, metadata help/unit/choices)).
    The market's own grid and the episode window are skipped by default (set from the data)."""
    return [(o.name, o.type, dataclasses.field(default=o.default, metadata={
        "help": o.doc + (f" [{o.unit}]" if o.unit else ""), "unit": o.unit, "choices": o.choices}))
        for o in OPTIONS if o.name not in skip]


def check_config(**config: Any) -> dict[str, Any]:
    """Every option, parsed and validated exactly as the C++ pool does (ValueError naming the option)."""
    return _core.check_config(**config)


def size_lots(config: dict[str, Any], lot_size: float, ref_price: float) -> tuple[int, int]:
    """(order size, position limit) in lots of one dataset, as the C++ env converts them (cpp/env/spec.h,
    size_lots): base units / lot_size, or with trade_notional > 0 quote currency / (ref_price * lot_size);
    ref_price in quote per base: the mid of the dataset's first row (`reference_price`)."""
    from trader.sim.reference_numbers import llround

    if config["trade_notional"] > 0:
        quote_per_lot = ref_price * lot_size
        return llround(config["trade_notional"] / quote_per_lot), llround(config["max_position_notional"] / quote_per_lot)
    return llround(config["trade_size"] / lot_size), llround(config["max_position"] / lot_size)


def order_limit_lots(config: dict[str, Any], trade_lots: int, max_lots: int) -> int:
    """The position orders may reach, in lots: max_lots, or position_cap_trades trade sizes when that is tighter
    (cpp/env/trading_env.cpp, hi_lots_); max_lots stays the scale of observations and rewards."""
    cap = config["position_cap_trades"]
    return min(max_lots, cap * trade_lots) if cap > 0 else max_lots


def reference_price(book: np.ndarray, tick_size: float) -> float:
    """Quote per base at which sizes in quote currency become lots: the mid of the first row of `book`
    (int64 [T, L, 4] ticks), computed as the C++ env does."""
    return 0.5 * float(int(book[0, 0, 0]) + int(book[0, 0, 2])) * tick_size


def action_width(config: dict[str, Any]) -> int:
    """Floats per agent of a continuous action (1 for the integer modes)."""
    if config["actions"] == "quote_continuous":
        return 3 if config["quote_flatten"] else 2
    return 1


def num_quote_actions(config: dict[str, Any]) -> int:
    return (config["quote_levels"] + 1) ** 2 * (2 if config["quote_flatten"] else 1)


def single_agent_spaces(config: dict[str, Any], feature_dim: int) -> tuple[gym.spaces.Box, gym.spaces.Space]:
    """Observation and action space of one agent."""
    extra = len(ACCOUNT_FEATURES) + (len(QUOTE_FEATURES) if config["actions"].startswith("quote") else 0)
    obs = gym.spaces.Box(-np.inf, np.inf, (feature_dim + extra,), np.float32)
    mode = config["actions"]
    if mode == "discrete":
        act = gym.spaces.Discrete(3)
    elif mode == "quote":
        act = gym.spaces.Discrete(num_quote_actions(config))
    else:
        act = gym.spaces.Box(-1.0, 1.0, (action_width(config),), np.float32)
    return obs, act


def spaces(config: dict[str, Any], feature_dim: int) -> tuple[gym.spaces.Box, gym.spaces.Space]:
    """Observation and action space of one env: one agent's, or stacked over K agents."""
    obs, act = single_agent_spaces(config, feature_dim)
    K = config["num_agents"]
    if K == 1:
        return obs, act
    obs = gym.spaces.Box(-np.inf, np.inf, (K,) + obs.shape, np.float32)
    if isinstance(act, gym.spaces.Discrete):
        return obs, gym.spaces.MultiDiscrete([int(act.n)] * K)
    return obs, gym.spaces.Box(-1.0, 1.0, (K,) + act.shape, np.float32)


def encode_quote(bid_idx: int, ask_idx: int, flatten: bool = False, *, quote_levels: int | None = None) -> int:
    """The `quote` action for grid indices bid_idx, ask_idx (quote_levels = no quote on that side)."""
    L = defaults()["quote_levels"] if quote_levels is None else int(quote_levels)
    for name, i in (("bid_idx", bid_idx), ("ask_idx", ask_idx)):
        if not 0 <= int(i) <= L:
            raise ValueError(f"{name}: expected 0 to {L} (quote_levels = no quote), got {i}")
    return int(flatten) * (L + 1) ** 2 + int(bid_idx) * (L + 1) + int(ask_idx)


def decode_quote(action: int, *, quote_levels: int | None = None) -> tuple[int, int, bool]:
    """(bid_idx, ask_idx, flatten) of a `quote` action."""
    L = defaults()["quote_levels"] if quote_levels is None else int(quote_levels)
    a = int(action)
    if not 0 <= a < 2 * (L + 1) ** 2:
        raise ValueError(f"action: expected 0 to {2 * (L + 1) ** 2 - 1}, got {a}")
    return (a % (L + 1) ** 2) // (L + 1), a % (L + 1), a >= (L + 1) ** 2


QUOTE_SIDES = ("any", "both", "symmetric", "lean")
"""Which `quote` actions a learner's policy may take (PPO's quote_sides, issue 13): any; both sides or none (no
one-sided quote); the same offset on both sides or none; both sides at offsets at most one level apart (a lean of
one tick, to shed inventory: Avellaneda and Stoikov 2008's reservation price, on the grid) or none."""


def quote_allowed(bid_idx: int, ask_idx: int, quote_levels: int, sides: str) -> bool:
    """Whether quote_sides `sides` lets a policy take the quote of grid indices bid_idx, ask_idx (quote_levels:
    no quote on that side)."""
    if sides not in QUOTE_SIDES:
        raise ValueError(f"quote_sides: expected one of {', '.join(QUOTE_SIDES)}, got {sides!r}")
    if sides in ("both", "lean"):
        two_sided = (bid_idx == quote_levels) == (ask_idx == quote_levels)
        return two_sided and (sides == "both" or bid_idx == quote_levels or abs(bid_idx - ask_idx) <= 1)
    return sides == "any" or bid_idx == ask_idx


def abstain_log_probs(prior: float, quote_levels: int, quote_flatten: bool, sides: str = "any") -> list[float]:
    """Log-probabilities of every `quote` action (decode_quote's order) under a learner's prior (PPO's
    abstain_prior and quote_sides, issue 13): no quote on each side with `prior`; with sides "any" each of the
    quote_levels offsets with (1 - prior) / quote_levels, sides independent; otherwise the quotes `sides` allows
    share 1 - prior equally and the others have probability 0 (-inf); flatten, when the grid carries it, with
    1 - prior. A prior of 0 is off: 0 for every action `sides` allows (the head's near-uniform init), -inf for the
    others."""
    side = [math.log((1.0 - prior) / quote_levels)] * quote_levels + [math.log(prior or 1.0)]
    quoting = sum(quote_allowed(b, a, quote_levels, sides)
                  for b in range(quote_levels) for a in range(quote_levels))  # pairs that quote both sides
    out = []
    for a in range(num_quote_actions({"quote_levels": quote_levels, "quote_flatten": quote_flatten})):
        bid, ask, flatten = decode_quote(a, quote_levels=quote_levels)
        if not quote_allowed(bid, ask, quote_levels, sides):
            lp = -math.inf
        elif not prior:
            lp = 0.0
        elif sides == "any":
            lp = side[bid] + side[ask]
        elif bid == quote_levels:
            lp = side[bid]
        else:
            lp = math.log(1.0 - prior) - math.log(quoting)
        out.append(lp + (math.log(1.0 - prior if flatten else prior) if quote_flatten and prior else 0.0))
    return out


# Option names of runs saved before issue 11 (trader train's arguments in their checkpoints and config
# files) -> today's; from_legacy translates them wherever saved arguments are read.
LEGACY_NAMES = {"fee_bps": "taker_fee_bps"}


def from_legacy(config: dict[str, Any]) -> dict[str, Any]:
    """Saved arguments of an older run under today's names: fee_bps -> taker_fee_bps, continuous ->
    actions, order_latency_ms -> order_latency_ns and cancel_latency_ns (it set both), latency_steps
    (only 0 is accepted; it was replaced by latency in ns). An `actions` of None is left unset."""
    out = dict(config)
    if out.get("actions", "") is None:
        del out["actions"]
    for old, new in LEGACY_NAMES.items():
        if old in out:
            if new in out:
                raise ValueError(f"{old}: the old name of {new}; pass only {new}")
            out[new] = out.pop(old)
    if "continuous" in out:
        continuous = out.pop("continuous")
        if "actions" in out and continuous:
            raise ValueError("continuous: the old form of actions='continuous'; pass only actions")
        out.setdefault("actions", "continuous" if continuous else "discrete")
    if "order_latency_ms" in out:
        ms = out.pop("order_latency_ms")
        if ms is not None:
            for name in ("order_latency_ns", "cancel_latency_ns"):
                out.setdefault(name, round(float(ms) * 1e6))
    if "latency_steps" in out:
        if int(out.pop("latency_steps") or 0) != 0:
            raise ValueError("latency_steps: replaced by order_latency_ns (market orders execute at the first row "
                             "at or after send time + latency); only 0 is still accepted")
    return out
