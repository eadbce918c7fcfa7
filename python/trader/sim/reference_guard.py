"""The move guard of the pure-Python reference env, written out row by row as cpp/env/move_guard.h
states it (issue 13): which rows of one dataset only accept orders that reduce a position."""

from __future__ import annotations

import math

ARM_WINDOWS = 6  # the guard is armed once this many windows of rows have passed (MoveGuard::kArmWindows)


def move_guard(ts: list[int], mid: list[float], window_ns: int, sigmas: float, halflife_ns: int,
               hold_ns: int) -> list[bool]:
    """Per row: the guard is up. ts: row times (ns, ascending); mid: ticks. From rows <= r only."""
    up = []
    armed_ts = ts[0] + ARM_WINDOWS * window_ns  # five windows of moves seen
    p = 0  # the last row at least a window before the current one
    total = weight = 0.0  # decayed sums of the squared moves and of their weights
    last_ts = None  # time of the last move summed
    trip_ts = None
    for r, t in enumerate(ts):
        if t - window_ns < ts[0]:  # no row a full window back yet
            up.append(True)
            continue
        while p + 1 < r and ts[p + 1] <= t - window_ns:
            p += 1
        x = math.log(mid[r] / mid[p])
        if t >= armed_ts:
            var = max(total / weight, (1.0 / mid[r]) ** 2)  # at least a one-tick move
            if x * x > sigmas * sigmas * var:
                trip_ts = t
        up.append(t < armed_ts or (trip_ts is not None and t - trip_ts <= hold_ns))
        decay = 0.0 if last_ts is None else math.exp2(-float(t - last_ts) / float(halflife_ns))
        total = decay * total + x * x
        weight = decay * weight + 1.0
        last_ts = t
    return up
