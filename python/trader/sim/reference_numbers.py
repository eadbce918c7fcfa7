"""The C++ env's random draws and rounding, in plain Python with the same results bit for bit:
splitmix64 streams, Lemire's multiply-shift for bounded integers, and C's llround. Used by the
reference env (trader.sim.reference) to reproduce the C++ env's seeded choices exactly."""

from __future__ import annotations

import math

MASK64 = (1 << 64) - 1


def splitmix64(state: int) -> tuple[int, int]:
    """One splitmix64 draw (Steele, Lea, Flood 2014): returns (new state, 64-bit output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def below(r: int, n: int) -> int:
    """Uniform integer in [0, n) from a 64-bit draw by multiply-shift (Lemire 2019)."""
    return (r * n) >> 64


def llround(x: float) -> int:
    """C's llround: nearest integer, halfway cases away from zero (exact for any double)."""
    f = math.floor(x)
    frac = x - f
    if frac > 0.5 or (frac == 0.5 and x > 0):
        return int(f) + 1
    return int(f)
