"""benchmarks/move_guard_stats.py's reading of what followed the guard's trips, on a known case."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from move_guard_stats import after_trips  # noqa: E402
from trader.sim.reference_guard import NO_LONG, NO_SHORT, REDUCE_ONLY  # noqa: E402


def test_each_one_way_trip_is_read_a_window_later_in_its_direction():
    ts = np.arange(10, dtype=np.int64) * 1_000_000_000  # rows 1 s apart, a 2 s window
    mid = np.array([100.0, 100.0, 99.0, 98.0, 98.0, 99.0, 100.0, 100.0, 101.0, 101.0])
    # a fall at row 2 (it went on: 99 -> 98), a rise at row 5 (it went on: 99 -> 100), both ways at row 8 (left out)
    bars = [0, 0, NO_LONG, NO_LONG, 0, NO_SHORT, NO_SHORT, 0, REDUCE_ONLY, 0]
    went = after_trips(ts, mid, bars, 2_000_000_000)
    assert went == pytest.approx([-1e4 * np.log(98 / 99), 1e4 * np.log(100 / 99)])
    # a trip without a full window of rows after it is left out
    assert len(after_trips(ts[:7], mid[:7], bars[:7], 2_000_000_000)) == 1
