"""The actions of the pure-Python reference env (trader.sim.reference): one step's action for its K agents,
parsed and checked as the C++ binding checks it (cpp/bindings/env_bindings.cpp), in the agents' order."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trader.sim import spec


def parse_action(action, cfg: dict[str, Any], K: int) -> list:
    """Per agent: an int (discrete, quote), a float (continuous) or a list of floats (quote_continuous)."""
    a = np.asarray(action)
    width = spec.action_width(cfg)
    integer = cfg["actions"] in ("discrete", "quote")
    if a.size != K * (1 if integer else width):
        raise ValueError(f"action: expected {K * (1 if integer else width)} value(s), got shape {a.shape}")
    if not integer:
        if a.dtype.kind != "f":
            raise ValueError(f"action: expected a float array ({cfg['actions']} mode: values in [-1, 1])")
        values = [float(v) for v in a.astype(np.float32).reshape(-1)]  # the C++ takes float32
        for i, v in enumerate(values):
            if not -1.0 <= v <= 1.0:
                raise ValueError(f"action: value {v} at index {i} is not in [-1, 1]")
        return values if width == 1 else [values[k * width:(k + 1) * width] for k in range(K)]
    count = 3 if cfg["actions"] == "discrete" else spec.num_quote_actions(cfg)
    if a.dtype.kind not in "iu":
        raise ValueError(f"action: expected an integer array ({cfg['actions']} mode)")
    values = [int(v) for v in a.reshape(-1)]
    for i, v in enumerate(values):
        if not 0 <= v < count:
            raise ValueError(f"action: value {v} at index {i} is not in [0, {count})")
    return values


def quote_fields(action, cfg: dict[str, Any], position: int) -> tuple[int, int, bool]:
    """One agent's quote action as the C++ step decodes it: (bid grid index, ask grid index, flatten), index
    quote_levels meaning no quote; with quote_exit_touch the side that reduces `position` takes index 0."""
    if cfg["actions"] == "quote":
        bid_idx, ask_idx, flatten = spec.decode_quote(action, quote_levels=cfg["quote_levels"])
    else:
        L1 = cfg["quote_levels"] + 1
        bid_idx, ask_idx = (min(max(math.floor((v + 1.0) * 0.5 * L1), 0), L1 - 1) for v in action[:2])
        flatten = len(action) == 3 and action[2] > 0.0
    if cfg["quote_exit_touch"] and position:
        bid_idx, ask_idx = (bid_idx, 0) if position > 0 else (0, ask_idx)
    return bid_idx, ask_idx, flatten
