"""trader-sim bench: run_bench with tiny settings returns well-formed rows (no timing assertions)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from trader.sim.bench import run_bench
from trader.sim.cli import main

KEYS = {"env", "num_envs", "threads", "mode", "batch_size", "ours_steps_per_s", "envpool_cartpole_steps_per_s",
        "python_ref_steps_per_s", "ours_vs_envpool", "ours_vs_python", "note"}


def test_run_bench_rows():
    rows = run_bench(num_envs=(4,), threads=(1,), seconds=0.05)
    assert [(r["env"], r["num_envs"], r["threads"], r["mode"], r["batch_size"]) for r in rows] == [
        ("discrete", 4, 1, "sync", 4), ("discrete", 4, 1, "async", 1), ("quote", 4, 1, "sync", 4),
        ("quote", 4, 1, "async", 1)]
    for r in rows:
        assert set(r) == KEYS
        assert r["ours_steps_per_s"] > 0
        for other, ratio in (("envpool_cartpole_steps_per_s", "ours_vs_envpool"),
                             ("python_ref_steps_per_s", "ours_vs_python")):
            if r[other] is None:  # envpool or the reference env not installed
                assert r[ratio] is None and r["note"]
            else:
                assert r[other] > 0 and r[ratio] > 0


def test_run_bench_skips_python_above_limit_and_marks_single_env_async():
    rows = run_bench(num_envs=(1, 8), threads=(1,), seconds=0.02, envpool=False, python_max_envs=4, envs=("quote",))
    by = {(r["num_envs"], r["mode"]): r for r in rows}
    assert by[(1, "async")]["batch_size"] == 1 and "async = sync" in by[(1, "async")]["note"]
    assert by[(8, "async")]["batch_size"] == 2
    assert by[(8, "sync")]["python_ref_steps_per_s"] is None and "not run" in by[(8, "sync")]["note"]
    assert all(r["envpool_cartpole_steps_per_s"] is None and r["ours_steps_per_s"] > 0 for r in rows)


def test_cli_bench_json():
    res = CliRunner().invoke(main, ["bench", "--num-envs", "2", "--threads", "1", "--seconds", "0.02", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 4 and set(rows[0]) == KEYS
    assert [r["env"] for r in rows] == ["discrete", "discrete", "quote", "quote"]
