"""Tardis.dev CSV files (../shared/data/tardis_csv_samples, real rows): conversion, the book they
give, merging with trades, gzip per day, and bad input named by file, line and field."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared
from trader.data.dataset import load_dataset
from trader.data.errors import FeedError
from trader.data.events import EventKind
from trader.data.tardis import convert_tardis_files
from trader.sim.cli import main

L2 = "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
SNAP5 = "binance-futures_book_snapshot_5_BTCUSDT.csv"


def sample(name):
    return shared("tardis_csv_samples", name)


def lines_of(name):
    return sample(name).read_text().splitlines()


def write(tmp_path, name, lines, compress=False):
    path = tmp_path / name
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_incremental_l2_sample():
    events, meta = convert_tardis_files([sample(L2)])
    assert (meta["exchange"], meta["symbol"], meta["market"]) == ("deribit", "BTC-PERPETUAL", "coinm")
    assert meta["tick_size"] == "0.5" and meta["lot_size"] == "10"
    assert events["kind"].tolist() == [EventKind.BOOK_CLEAR] + [EventKind.BOOK_SNAPSHOT] * 15
    assert events["price"][1] * 0.5 == 6421.5 and events["qty"][1] * 10 == 18640  # first row of the file
    assert events["local_ts"][0] == 1585699200355684000 and events["exch_ts"][0] == 1585699200245000000
    assert events["flags"][-1] & 4 and not (events["flags"][1:-1] & 4).any()  # one message


def test_book_snapshot_5_sample():
    events, meta = convert_tardis_files([sample(SNAP5)])
    assert (meta["exchange"], meta["market"], meta["tick_size"], meta["lot_size"]) == ("binance-futures", "usdm",
                                                                                     "0.01", "0.001")
    assert len(events) == 10 * 11 and meta["report"]["snapshots"] == 10
    ts, book, _ = load_dataset_from(events, meta).sample_top(depth=5)
    assert book[0, 0, 0] == 1165707 and book[0, 0, 2] == 1165708  # 11657.07 / 11657.08
    assert book[0, 4, 0] == 1165568 and book[0, 4, 1] == 111  # bids[4]: 11655.68, 0.111
    assert book[0, 4, 2] == 1165792 and book[0, 4, 3] == 918  # asks[4]: 11657.92, 0.918


def load_dataset_from(events, meta):
    from trader.data.dataset import Dataset

    return Dataset(None, events, meta)


def test_cli_converts_and_info_shows_them(tmp_path):
    for name in (L2, SNAP5):
        out = tmp_path / name
        res = CliRunner().invoke(main, ["convert", str(sample(name)), "-o", str(out)])
        assert res.exit_code == 0, res.output
        info = CliRunner().invoke(main, ["info", str(out)])
        assert info.exit_code == 0 and load_dataset(out).meta["symbol"] in info.output
    assert "11657.1" in CliRunner().invoke(main, ["info", str(tmp_path / SNAP5)]).output  # mid price


def test_deltas_trades_new_snapshot_and_gzip_days(tmp_path):
    rows = lines_of(L2)
    head, snap = rows[0], rows[1:]
    t0 = 1585699200355684
    deltas = [f"deribit,BTC-PERPETUAL,{t0 + 1000},{t0 + 1100},false,ask,6421.5,0",
              f"deribit,BTC-PERPETUAL,{t0 + 1000},{t0 + 1100},false,bid,6421,500",
              f"deribit,BTC-PERPETUAL,{t0 + 3000},{t0 + 3100},false,ask,6422,2000"]
    resnap = [r.replace("1585699200355684", str(t0 + 5000)).replace("1585699200245000", str(t0 + 4000)) for r in snap]
    day1 = write(tmp_path, "day1.csv.gz", [head] + snap + deltas, compress=True)
    day2 = write(tmp_path, "day2.csv.gz", [head] + resnap, compress=True)
    trades = write(tmp_path, "trades.csv", ["exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
                                            f"deribit,BTC-PERPETUAL,{t0 + 1500},{t0 + 2000},77,buy,6421.5,10",
                                            f"deribit,BTC-PERPETUAL,{t0 + 1500},{t0 + 3100},x-1,unknown,6421.5,20"])
    events, meta = convert_tardis_files([day1, day2, trades])
    kinds = events["kind"].tolist()
    assert kinds.count(EventKind.BOOK_CLEAR) == 2  # the second day's snapshot resets the book
    assert kinds.count(EventKind.BOOK_DELTA) == 3 and kinds.count(EventKind.TRADE) == 2
    assert (np.diff(events["local_ts"]) >= 0).all()  # merged by local time
    trade = events[events["kind"] == EventKind.TRADE]
    assert trade["update_id"].tolist() == [77, 0] and trade["flags"].tolist() == [1 | 4, 4]
    assert meta["report"]["trades_without_side"] == 1 and meta["report"]["trade_ids_not_numeric"] == 1
    # trade at t0+3100 equals the last delta's time: book first
    assert events["kind"][-len(snap) - 2] == EventKind.BOOK_DELTA
    ts, book, _ = load_dataset_from(events, meta).sample_top(depth=1)
    assert book[-1, 0, 2] * 0.5 == 6421.5  # after the reset, the snapshot's best ask again


@pytest.mark.parametrize("case", ["missing column", "unsorted", "unknown side", "bad number", "bad flag"])
def test_bad_tardis_input_names_file_line_and_field(tmp_path, case):
    rows = lines_of(L2)
    if case == "missing column":
        rows = [",".join(c for k, c in enumerate(r.split(",")) if k != 5) for r in rows]  # no 'side'
        expect = r":1: header: missing column 'side'"
    elif case == "unsorted":
        rows[6] = rows[6].replace("1585699200355684", "1585699200355000")
        expect = r":7: field 'local_timestamp': 1585699200355000 is below the previous row's"
    elif case == "unknown side":
        rows[4] = rows[4].replace(",ask,", ",middle,")
        expect = r":5: field 'side': expected bid or ask, got 'middle'"
    elif case == "bad number":
        rows[3] = rows[3].replace(",6422.5,", ",6422.5.1,")
        expect = r":4: field 'price': expected a positive decimal number"
    else:
        rows[2] = rows[2].replace(",true,", ",yes,")
        expect = r":3: field 'is_snapshot': expected true or false"
    path = write(tmp_path, "bad.csv", rows)
    with pytest.raises(FeedError, match=f"^{path}{expect}"):
        convert_tardis_files([path])
    res = CliRunner().invoke(main, ["convert", "--format", "tardis", str(path), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and f"{path}{expect.replace(chr(92), '')}"[:60] in res.stderr.replace("\n", "")
