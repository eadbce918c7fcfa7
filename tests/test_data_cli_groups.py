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


def test_duration_cuts_every_format_by_receive_time(tmp_path):
    raw = shared("bitfinex_btcusd_book25_snapshots", "orderbook_bitfinex_btcusd_view.tsv.gz")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert invoke("trader data", "convert", str(raw), "--format", "bitfinex", "-o", str(whole)).exit_code == 0
    res = invoke("trader data", "convert", str(raw), "--format", "bitfinex", "--duration", "600", "-o", str(cut))
    assert res.exit_code == 0, res.output
    a, b = load_dataset(whole), load_dataset(cut)
    ts = a.events["local_ts"]
    assert ts[-1] - ts[0] > 2_000 * 10**9  # 38.5 minutes
    kept = int(np.argmax(ts > ts[0] + 600 * 10**9))
    assert np.array_equal(b.events, a.events[:kept]) and b.meta["duration_s"] == 600
    assert f"the first {kept:,} of {len(ts):,} events kept" in b.meta["report"]["notes"][-1]
    assert a.events["kind"][kept] == 1  # the first event left out clears the book: a whole snapshot starts there
    res = invoke("trader data", "convert", str(raw), "--format", "bitfinex", "--duration", "0", "-o", str(tmp_path / "z"))
    assert res.exit_code == 2 and "--duration" in res.output
