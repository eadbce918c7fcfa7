"""The market-data commands (trader.data.cli) under both groups: `trader data ...` and `trader-sim ...` are
the same commands, on the bundled sample and on a real recording; `trader-sim` adds bench and serve."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from conftest import shared

from trader.cli import main as trader_main
from trader.data.dataset import load_dataset
from trader.sim.cli import main as sim_main

GROUPS = {"trader data": (trader_main, ["data"]), "trader-sim": (sim_main, [])}


def invoke(group: str, *args: str):
    command, prefix = GROUPS[group]
    return CliRunner().invoke(command, [*prefix, *args])


def test_groups_hold_the_data_commands():
    data_help = invoke("trader data", "--help").output
    sim_help = invoke("trader-sim", "--help").output
    for name in ("convert", "info", "verify"):
        assert f"  {name} " in data_help and f"  {name} " in sim_help
    for name in ("bench", "serve"):
        assert f"  {name} " in sim_help and f"  {name} " not in data_help


def test_info_and_verify_on_the_sample_agree_between_groups():
    infos = [invoke(g, "info", "--json") for g in GROUPS]
    assert [r.exit_code for r in infos] == [0, 0]
    assert json.loads(infos[0].output) == json.loads(infos[1].output)
    assert json.loads(infos[0].output)["events"] == 83_468
    verifies = [invoke(g, "verify", "--json") for g in GROUPS]
    assert [r.exit_code for r in verifies] == [0, 0]
    (a,), (b,) = (json.loads(r.output) for r in verifies)
    assert a == b and a["ok"] and a["compared"] == a["matched"] == 299


def test_convert_real_feed_same_dataset_from_both_groups(tmp_path):
    raw = shared("binance_hftbacktest_raw_feed", "spot", "btcusdt_20240808.gz")
    out = {}
    for g in GROUPS:
        folder = tmp_path / g.replace(" ", "_")
        res = invoke(g, "convert", str(raw), "--duration", "20", "-o", str(folder))
        assert res.exit_code == 0, res.output
        assert f"wrote {folder}/events.npy" in res.output
        out[g] = load_dataset(folder)
    a, b = out.values()
    assert len(a.events) > 1000 and np.array_equal(a.events, b.events) and a.meta == b.meta
    res = invoke("trader-sim", "verify", "--json", str(tmp_path / "trader_data"))
    assert res.exit_code == 0 and json.loads(res.output)[0]["mismatched"] == 0


def test_convert_bad_option_names_the_column(tmp_path):
    csv = shared("tardis_csv_samples", "binance-futures_book_snapshot_5_BTCUSDT.csv")
    for g in GROUPS:
        res = invoke(g, "convert", "--format", "csv", "--csv-ts-column", "nope", str(csv), "-o", str(tmp_path / "x"))
        assert res.exit_code == 2
        assert "missing column 'nope'" in res.output and csv.name in res.output
