"""The move guard of the pure-Python reference env, written out row by row as cpp/env/move_guard.h
states it (issue 13): what each row of one dataset bars, a long position, a short one or both, and how a
market order's target is clipped on a barred side (cpp/env/trading_env.cpp, order_from_action)."""

from __future__ import annotations

import math

ARM_WINDOWS = 6  # the guard is armed once this many windows of rows have passed (MoveGuard::kArmWindows)
NO_LONG, NO_SHORT = 1, 2  # MoveGuard::kNoLong, kNoShort: no order opens or adds to a long (a short) position
REDUCE_ONLY = NO_LONG | NO_SHORT


def move_guard(ts: list[int], mid: list[float], window_ns: int, sigmas: float, halflife_ns: int,
               hold_ns: int, sides: str = "both") -> list[int]:
    """Per row: what the guard bars (NO_LONG | NO_SHORT bits, 0: nothing). ts: row times (ns, ascending); mid:
    ticks; sides: "both" (reduce only while up) or "against_move". From rows <= r only."""
    up = []
    armed_ts = ts[0] + ARM_WINDOWS * window_ns  # five windows of moves seen
    p = 0  # the last row at least a window before the current one
    total = weight = 0.0  # decayed sums of the squared moves and of their weights
    last_ts = None  # time of the last move summed
    fall_ts = rise_ts = None  # times of the last trip down and up
    for r, t in enumerate(ts):
        if t - window_ns < ts[0]:  # no row a full window back yet
            up.append(REDUCE_ONLY)
            continue
        while p + 1 < r and ts[p + 1] <= t - window_ns:
            p += 1
        x = math.log(mid[r] / mid[p])
        if t >= armed_ts:
            var = max(total / weight, (1.0 / mid[r]) ** 2)  # at least a one-tick move
            if x * x > sigmas * sigmas * var:
                if x < 0:
                    fall_ts = t
                else:
                    rise_ts = t
        fell = fall_ts is not None and t - fall_ts <= hold_ns
        rose = rise_ts is not None and t - rise_ts <= hold_ns
        if t < armed_ts:
            up.append(REDUCE_ONLY)
        elif sides == "against_move":
            up.append((NO_LONG if fell else 0) | (NO_SHORT if rose else 0))
        else:
            up.append(REDUCE_ONLY if fell or rose else 0)
        decay = 0.0 if last_ts is None else math.exp2(-float(t - last_ts) / float(halflife_ns))
        total = decay * total + x * x
        weight = decay * weight + 1.0
        last_ts = t
    return up


def barred(bars: int) -> tuple[bool, bool]:
    """(no long, no short): what a row's bits bar."""
    return bool(bars & NO_LONG), bool(bars & NO_SHORT)


def toward_flat(target: int, expected: int, bars: int) -> int:
    """A market order's target position (lots) clipped toward flat on each side the row's bits bar, `expected` the
    position once every pending order fills."""
    no_long, no_short = barred(bars)
    target = min(target, max(expected, 0)) if no_long else target
    return max(target, min(expected, 0)) if no_short else target
