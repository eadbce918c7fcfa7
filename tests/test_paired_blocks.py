"""benchmarks/paired_blocks.py's leave-one-recording-out choice between two recipes, on known cases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from paired_blocks import left_one_recording_out  # noqa: E402


def _rows(with_: dict[str, list[float]], without: dict[str, list[float]]) -> list[dict]:
    return [{"run": r, "with_blocks": with_[r], "without_blocks": without[r]} for r in with_]


def test_each_recording_gets_the_side_better_on_the_other():
    # "with" wins on Bitstamp's blocks and loses on NEXOUSDT's: each recording is scored with the other's winner
    rows = _rows({"bitstamp18h": [10.0, 20.0], "bitstamp_btcusd_20150501": [30.0], "nexo28h": [-1.0, -3.0],
                  "nexo_spot_34h": [-2.0]},
                 {"bitstamp18h": [1.0, 2.0], "bitstamp_btcusd_20150501": [3.0], "nexo28h": [0.0, 0.0],
                  "nexo_spot_34h": [3.0]})
    out = left_one_recording_out(rows)
    assert out["choices"]["Bitstamp BTC/USD"]["chosen"] == "without"  # NEXOUSDT: without +1 > with -2 a block
    assert out["choices"]["NEXOUSDT"]["chosen"] == "with"  # Bitstamp: with +20 > without +2 a block
    assert out["choices"]["Bitstamp BTC/USD"]["here"] == pytest.approx(2.0)
    assert out["choices"]["NEXOUSDT"]["here"] == pytest.approx(-2.0)
    assert out["n"] == 6 and out["chosen"]["mean"] == pytest.approx((1 + 2 + 3 - 1 - 3 - 2) / 6)
    assert out["with"]["mean"] == pytest.approx(54 / 6) and out["without"]["mean"] == pytest.approx(9 / 6)


def test_a_tie_keeps_without_and_a_missing_run_gives_none():
    same = {"bitstamp18h": [1.0], "bitstamp_btcusd_20150501": [2.0], "nexo28h": [3.0], "nexo_spot_34h": [4.0]}
    out = left_one_recording_out(_rows(same, same))
    assert {c["chosen"] for c in out["choices"].values()} == {"without"}
    del same["nexo_spot_34h"]
    assert left_one_recording_out(_rows(same, same)) is None
