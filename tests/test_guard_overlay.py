"""benchmarks/guard_overlay.py's per-block summary on known cases: runs of one name are one block (their seeds'
means averaged), and the agent with the rule is set against each baseline block for block."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from guard_overlay import block_summary  # noqa: E402


def _row(run: str, without: list[float], with_: list[float], flat: list[float], hold: list[float]) -> dict:
    return {"run": run, "blocks_without": without, "blocks_with": with_,
            "block_baselines_with": [{"flat": f, "buy_and_hold": h} for f, h in zip(flat, hold)]}


def test_blocks_pool_runs_of_one_name_and_set_each_baseline_against_the_agent():
    rows = [_row("a", [1.0, 2.0], [3.0, 5.0], [0.0, 0.0], [-1.0, 6.0]),
            _row("a", [3.0, 4.0], [5.0, 7.0], [0.0, 0.0], [-1.0, 6.0]),  # the same evaluation, other seeds
            _row("b", [0.0], [-2.0], [0.0], [-4.0])]
    text = "\n".join(block_summary(rows))
    assert "the 3 blocks" in text  # a's two folds and b's one
    # with: blocks 4, 6, -2 (mean 2.67); without: 2, 3, 0; minus flat: 4, 6, -2; minus buy and hold: 5, 0, 2
    assert "- without the rule: +1.67" in text and "- with it: +2.67" in text
    assert "- with it minus flat with it, block for block: +2.67" in text
    assert "- with it minus buy_and_hold with it, block for block: +2.33" in text
    # the best baseline per block: flat 0, buy and hold 6, flat 0 -> 4, 0, -2; above every baseline in 1 of 3
    assert "minus the best baseline with it, block for block: +0.67" in text and "1 of 3" in text
    assert "- with minus without, block for block: +1.00" in text


def test_the_committee_is_read_like_the_seeds_and_set_against_their_mean():
    rows = [{**_row("a", [1.0, 2.0], [3.0, 5.0], [0.0, 0.0], [-1.0, 6.0]),
             "committee_blocks_without": [0.0, 4.0], "committee_blocks_with": [2.0, 8.0]},
            {**_row("b", [0.0], [-2.0], [0.0], [-4.0]),
             "committee_blocks_without": [1.0], "committee_blocks_with": [-1.0]}]
    text = "\n".join(block_summary(rows))
    # the committee with: 2, 8, -1 (mean 3.00); without: 0, 4, 1; minus buy and hold: 3, 2, 3; seeds' mean: 3, 5, -2
    assert "- the committee of the seeds without the rule: +1.67" in text
    assert "- the committee of the seeds with it: +3.00" in text
    assert "- the committee of the seeds with it minus buy_and_hold with it, block for block: +2.67" in text
    # best baseline per block 0, 6, 0 -> 2, 2, -1: above every baseline in 2 of 3
    assert "minus the best baseline with it, block for block: +1.00" in text and "2 of 3" in text
    assert "- the committee of the seeds with minus without, block for block: +1.33" in text
    # minus the seeds' mean with it (3, 5, -2): -1, 3, 1
    assert "- the committee with it minus the seeds' mean with it, block for block: +1.00" in text
    # without every row's committee, no committee line
    assert "committee" not in "\n".join(block_summary([rows[0], _row("c", [0.0], [0.0], [0.0], [0.0])]))
