"""Snapshot tables (jsonl, csv, Bitfinex, Coinbase, Bitstamp, LOBSTER) to events.

The real files are checked against the counts in ../shared/data/README.md and against their own first
row, parsed here independently; small hand-written files check values, units and every error."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import shutil
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import pytest

from trader import _core
from trader.data.errors import FeedError
from trader.data.events import EventFlag, EventKind
from trader.data.snapshots import SNAPSHOT_FORMATS, convert_snapshot_files, sniff_format

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BITFINEX = DATA / "bitfinex_btcusd_book25_snapshots" / "orderbook_bitfinex_btcusd_view.tsv.gz"
COINBASE = DATA / "coinbase_btcusd_2021-04-17_1min_book15" / "test.csv.gz"
BITSTAMP = DATA / "bitstamp_btcusd_2015-05-01_l3_events_top20" / "2015-05-01.log.bz2"
LOBSTER_DIR = DATA / "lobster_aapl_2012-06-21_level10_first999"
LOBSTER = LOBSTER_DIR / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv.gz"
LOBSTER_MSG = LOBSTER_DIR / "AAPL_2012-06-21_34200000_57600000_message_10.csv.gz"

BID, ASK, END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
CLEAR, SNAP, TRADE = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.TRADE)


def real(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (../shared/data beside the checkout)")
    return path


def levels_per_snapshot(ev: np.ndarray, flag: int) -> np.ndarray:
    snap = ev[(ev["kind"] == SNAP) & ((ev["flags"] & flag) != 0)]
    return np.bincount(snap["update_id"].astype(np.int64))[1:]


def check_structure(ev: np.ndarray, n_snapshots: int) -> None:
    """One CLEAR per snapshot, numbered 1..n; exactly one END per snapshot, on its last event."""
    clears = ev[ev["kind"] == CLEAR]
    assert len(clears) == n_snapshots
    assert np.array_equal(clears["update_id"], np.arange(1, n_snapshots + 1))
    assert np.array_equal(clears["prev_update_id"], clears["update_id"])
    book = ev[ev["kind"] != TRADE]
    ends = np.flatnonzero(book["flags"] & END)
    starts = np.flatnonzero(book["kind"] == CLEAR)
    assert len(ends) == n_snapshots
    assert np.array_equal(ends[:-1] + 1, starts[1:])  # END closes each snapshot right before the next
    assert ends[-1] == len(book) - 1


# ---- real files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bitstamp():
    return convert_snapshot_files([real(BITSTAMP)], "bitstamp")


def test_bitfinex_counts_and_first_row():
    ev, meta = convert_snapshot_files([real(BITFINEX)], "bitfinex")
    rep = meta["report"]
    assert (meta["exchange"], meta["symbol"], meta["tick_size"], meta["lot_size"]) == ("bitfinex", "BTCUSD", "1", "0.00000001")
    assert rep["snapshots"] == 999 and rep["lines"] == {"snapshot": 999}
    assert rep["repeated_rows"] == 366
    assert rep["backward_ts_steps"] == 14
    assert rep["crossed_snapshots"] == 0
    assert rep["levels"] == 999 * 50
    check_structure(ev, 999)
    assert np.all(levels_per_snapshot(ev, BID) == 25) and np.all(levels_per_snapshot(ev, ASK) == 25)

    with gzip.open(BITFINEX, "rt") as fh:
        row = fh.readline().rstrip("\n").split("\t")
    bids, asks = json.loads(row[6]), json.loads(row[7])
    ts, book, _ = _core.sample_top(ev, 25, 0)
    assert len(ts) == 999
    assert ts[0] == int(Decimal(bids[0]["timestamp"])) * 10**9 == 1516985025 * 10**9
    lots = lambda a: int(Decimal(a) * 10**8)  # noqa: E731
    assert book[0, :, 0].tolist() == [int(lv["price"]) for lv in bids]
    assert book[0, :, 1].tolist() == [lots(lv["amount"]) for lv in bids]
    assert book[0, :, 2].tolist() == [int(lv["price"]) for lv in asks]
    assert book[0, :, 3].tolist() == [lots(lv["amount"]) for lv in asks]
    assert book[0, 0, 0] == int(Decimal(row[1])) and book[0, 0, 2] == int(Decimal(row[2]))


def test_coinbase_counts_spread_and_first_row():
    ev, meta = convert_snapshot_files([real(COINBASE)], "coinbase")
    rep = meta["report"]
    assert (meta["symbol"], meta["tick_size"], meta["lot_size"]) == ("BTC-USD", "0.01", "0.00000001")
    assert rep["snapshots"] == 600 and rep["lines"] == {"header": 1, "snapshot": 600}
    assert rep["crossed_snapshots"] == 0
    assert 0 < rep["max_price_rounding_error_ticks"] < 0.01
    # 8 levels of the table have notional 0.0: left out and counted
    assert rep["zero_size_levels_skipped"] == 8
    assert rep["levels"] == 600 * 30 - 8
    check_structure(ev, 600)
    nb, na = levels_per_snapshot(ev, BID), levels_per_snapshot(ev, ASK)
    assert nb[0] == na[0] == 15 and nb.sum() + na.sum() == 600 * 30 - 8 and nb.max() == na.max() == 15

    with gzip.open(COINBASE, "rt") as fh:
        rows = csv.DictReader(fh)
        row0 = next(rows)
    ts, book, _ = _core.sample_top(ev, 15, 0)
    assert len(ts) == 600
    assert ts[0] == 1618680120172344000  # 2021-04-17 17:22:00.172344 UTC
    spread = (book[0, 0, 2] - book[0, 0, 0]) * Decimal("0.01")
    assert abs(spread - Decimal(row0["spread"])) <= Decimal("0.01")
    mid = Decimal(row0["midpoint"])
    for side, col_p, col_q in (("bids", 0, 1), ("asks", 2, 3)):
        for i in range(15):
            price = (mid * (1 + Decimal(row0[f"{side}_distance_{i}"]))).quantize(Decimal("0.01"))
            size = (Decimal(row0[f"{side}_notional_{i}"]) / price).quantize(Decimal("1e-8"), ROUND_HALF_EVEN)
            assert book[0, i, col_p] == int(price * 100), (side, i)
            assert book[0, i, col_q] == int(size * 10**8), (side, i)
    assert book[0, 0, 0] == 6059001 and book[0, 0, 2] == 6059002


def test_bitstamp_counts_and_first_row(bitstamp):
    ev, meta = bitstamp
    rep = meta["report"]
    assert (meta["exchange"], meta["symbol"], meta["tick_size"], meta["lot_size"]) == ("bitstamp", "BTCUSD", "0.01", "0.00000001")
    assert rep["snapshots"] == 29_992
    assert rep["trades"] == 4_251
    assert rep["lines"] == {
        "order_created": 118_960, "order_changed": 4_516, "order_deleted": 119_048,
        "trade": 4_251, "order_book": 29_992,
    }
    assert sum(rep["lines"].values()) == 276_767
    assert rep["l3_order_events"] == "counted, not converted"
    assert rep["trade_side"] == {"maker_fill": 4_233, "quote_rule": 17, "tick_rule": 1, "unknown": 0}
    assert rep["crossed_snapshots"] == 0 and rep["zero_size_levels_skipped"] == 0
    check_structure(ev, 29_992)
    assert np.all(levels_per_snapshot(ev, BID) == 20) and np.all(levels_per_snapshot(ev, ASK) == 20)
    assert np.all(ev["exch_ts"] == 0)

    trades = ev[ev["kind"] == TRADE]
    assert len(trades) == 4_251
    assert np.all((trades["flags"] == END | BID) | (trades["flags"] == END | ASK))  # every trade has a side
    # first trade line: 1430438404645 trade {"price": 236.47, "amount": 0.21144331, "id": 8111041}; 10 ms and
    # 8 ms before it a new bid at 236.47 shrank by 0.21144331 and a minute-old ask at 236.47 was deleted with
    # amount 0: the ask rested, the bid took it, the aggressor bought
    t0 = trades[0]
    assert t0["flags"] == END | BID  # a trade's BID flag: the buyer was the aggressor
    assert (t0["update_id"], t0["price"], t0["qty"], t0["local_ts"], t0["line"]) == (
        8111041, 23647, 21144331, 1430438404645 * 10**6, 4)
    assert trades["update_id"].min() == 8111041 and trades["update_id"].max() == 8116129

    with bz2.open(BITSTAMP, "rt") as fh:
        for lineno, text in enumerate(fh, 1):
            if " order_book " in text:
                break
    local_ms, _, payload = text.split(" ", 2)
    first = json.loads(payload)
    ts, book, flow = _core.sample_top(ev, 20, 0, "local")
    assert len(ts) == 29_992
    assert ts[0] == int(local_ms) * 10**6
    ticks = lambda p: int(Decimal(p) * 100)  # noqa: E731
    lots = lambda q: int(Decimal(q) * 10**8)  # noqa: E731
    assert book[0, :, 0].tolist() == [ticks(p) for p, _ in first["bids"]]
    assert book[0, :, 1].tolist() == [lots(q) for _, q in first["bids"]]
    assert book[0, :, 2].tolist() == [ticks(p) for p, _ in first["asks"]]
    assert book[0, :, 3].tolist() == [lots(q) for _, q in first["asks"]]
    clears = ev[ev["kind"] == CLEAR]
    assert clears[0]["line"] == lineno and clears[0]["local_ts"] == int(local_ms) * 10**6
    assert flow.sum() == trades["qty"].sum()  # every trade is bought or sold flow


def test_lobster_counts_and_first_row():
    real(LOBSTER_MSG)
    ev, meta = convert_snapshot_files([real(LOBSTER)], "lobster")
    rep = meta["report"]
    assert (meta["exchange"], meta["symbol"], meta["tick_size"], meta["lot_size"], meta["qty_unit"]) == (
        "nasdaq", "AAPL", "0.01", "1", "shares")
    assert meta["sources"][0]["message_file"]["name"] == LOBSTER_MSG.name
    assert rep["snapshots"] == 999 and rep["dummy_levels_skipped"] == 0 and rep["crossed_snapshots"] == 0
    check_structure(ev, 999)
    assert np.all(levels_per_snapshot(ev, BID) == 10) and np.all(levels_per_snapshot(ev, ASK) == 10)

    with gzip.open(LOBSTER, "rt") as fh:
        row = [int(x) for x in fh.readline().split(",")]
    ts, book, _ = _core.sample_top(ev, 10, 0)
    assert len(ts) == 999
    # 34200.004241176 s after midnight New York (EDT, UTC-4) on 2012-06-21
    assert ts[0] == (1340236800 + 4 * 3600) * 10**9 + 34200_004241176  # 1340236800: 2012-06-21 00:00 UTC
    assert book[0, :, 2].tolist() == [p // 100 for p in row[0::4]]
    assert book[0, :, 3].tolist() == row[1::4]
    assert book[0, :, 0].tolist() == [p // 100 for p in row[2::4]]
    assert book[0, :, 1].tolist() == row[3::4]


def test_lobster_without_message_file_is_an_error(tmp_path):
    copy = tmp_path / LOBSTER.name
    shutil.copy(real(LOBSTER), copy)
    with pytest.raises(FeedError, match="message file") as exc:
        convert_snapshot_files([copy], "lobster")
    assert str(copy) in str(exc.value)


def test_lobster_dummy_levels_are_skipped(tmp_path):
    ob = tmp_path / "XYZ_2012-06-21_0_0_orderbook_2.csv"
    ob.write_text("101000,5,100000,7,9999999999,0,-9999999999,0\n101000,5,100000,7,102000,3,99000,1\n")
    (tmp_path / "XYZ_2012-06-21_0_0_message_2.csv").write_text("34200.5,1,1,5,101000,-1\n34201,1,2,3,102000,-1\n")
    ev, meta = convert_snapshot_files([ob], "lobster")
    assert meta["symbol"] == "XYZ" and meta["report"]["dummy_levels_skipped"] == 2
    assert meta["tick_size"] == "0.1"  # gcd of 10.1, 10.0, 10.2, 9.9 USD
    ts, book, _ = _core.sample_top(ev, 2, 0)
    assert book[0].tolist() == [[100, 7, 101, 5], [0, 0, 0, 0]]
    assert book[1].tolist() == [[100, 7, 101, 5], [99, 1, 102, 3]]
    assert ts[1] - ts[0] == 500_000_000


def test_sniff_real_files():
    assert sniff_format(real(BITFINEX)) == "bitfinex"
    assert sniff_format(real(COINBASE)) == "coinbase"
    assert sniff_format(real(BITSTAMP)) == "bitstamp"
    assert sniff_format(real(LOBSTER)) == "lobster"
    assert sniff_format(real(LOBSTER_MSG)) is None
    raw = sorted((DATA / "binance_hftbacktest_raw_feed" / "spot").glob("*"))
    if raw:
        assert sniff_format(raw[0]) is None


# ---- hand-written files ------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def raises_at(path: Path, line: int | None, match: str, *args, **kwargs) -> FeedError:
    with pytest.raises(FeedError, match=match) as exc:
        convert_snapshot_files([path], *args, **kwargs)
    where = f"{path}:{line}:" if line is not None else f"{path}:"
    assert str(exc.value).startswith(where), str(exc.value)
    assert exc.value.line == line
    return exc.value


def test_jsonl_round_trip(tmp_path):
    p = write(tmp_path, "a.jsonl", "\n".join([
        '{"ts": 1700000000000, "bids": [["100.25", "1.5"], [100.0, 2]], "asks": [["100.5", "0.25"]]}',
        "",
        '{"ts": 1700000000500, "bids": [], "asks": [[0.3, 0.1], ["101", "3"]]}',
        '{"ts": 1700000001000, "bids": [], "asks": []}',
    ]) + "\n")
    assert sniff_format(p) == "jsonl"
    ev, meta = convert_snapshot_files([p], "jsonl", symbol="TEST")
    assert (meta["symbol"], meta["exchange"], meta["market"]) == ("TEST", "unknown", "spot")
    assert meta["tick_size"] == "0.05" and meta["lot_size"] == "0.05"  # gcd(100.25, 100, 100.5, 0.3, 101)
    assert meta["sources"][0]["format"] == "jsonl" and len(meta["sources"][0]["sha256"]) == 64
    rep = meta["report"]
    assert rep["lines"] == {"snapshot": 3, "blank": 1} and rep["snapshots"] == 3 and rep["empty_snapshots"] == 1
    assert rep["levels"] == 5 and rep["crossed_snapshots"] == 0
    got = [(int(e["kind"]), int(e["flags"]), int(e["line"]), int(e["exch_ts"]), int(e["local_ts"]),
            int(e["price"]), int(e["qty"]), int(e["update_id"]), int(e["prev_update_id"])) for e in ev]
    ms = 1_000_000
    t0 = 1700000000000 * ms
    assert got == [
        (CLEAR, 0, 1, t0, t0, 0, 0, 1, 1),
        (SNAP, BID, 1, t0, t0, 2005, 30, 1, 1),
        (SNAP, BID, 1, t0, t0, 2000, 40, 1, 1),
        (SNAP, ASK | END, 1, t0, t0, 2010, 5, 1, 1),
        (CLEAR, 0, 3, t0 + 500 * ms, t0 + 500 * ms, 0, 0, 2, 2),
        (SNAP, ASK, 3, t0 + 500 * ms, t0 + 500 * ms, 6, 2, 2, 2),  # 0.3 / 0.05 exactly, no float error
        (SNAP, ASK | END, 3, t0 + 500 * ms, t0 + 500 * ms, 2020, 60, 2, 2),
        (CLEAR, END, 4, t0 + 1000 * ms, t0 + 1000 * ms, 0, 0, 3, 3),
    ]
    ts, book, _ = _core.sample_top(ev, 2, 0)
    assert len(ts) == 3
    assert book[0].tolist() == [[2005, 30, 2010, 5], [2000, 40, 0, 0]]


@pytest.mark.parametrize(
    "value, unit",
    [
        ("1700000000", "auto"), ("1700000000000", "auto"), ("1700000000000000", "auto"),
        ("1700000000000000000", "auto"), ('"1700000000"', "auto"), ("1700000000.0", "auto"),
        ("1700000000", "s"), ("1700000000000", "ms"), ('"2023-11-14T22:13:20Z"', "auto"),
        ('"2023-11-14 23:13:20+01:00"', "auto"), ('"2023-11-14T22:13:20.000000000"', "auto"),
        ('"2023-11-14T17:13:20-0500"', "auto"),
    ],
)
def test_jsonl_timestamp_units(tmp_path, value, unit):
    p = write(tmp_path, "t.jsonl", f'{{"ts": {value}, "bids": [["1", "1"]], "asks": [["2", "1"]]}}\n')
    ev, _ = convert_snapshot_files([p], "jsonl", csv_ts_unit=unit)
    assert ev["exch_ts"][0] == 1_700_000_000 * 10**9 and ev["local_ts"][0] == ev["exch_ts"][0]


def test_iso_fraction_and_local_ts(tmp_path):
    p = write(tmp_path, "t.jsonl",
              '{"ts": "2021-04-17 17:22:00.172344+00:00", "local_ts": "2021-04-17T17:22:00.2Z",'
              ' "bids": [["1", "1"]], "asks": []}\n')
    ev, _ = convert_snapshot_files([p], "jsonl")
    assert ev["exch_ts"][0] == 1618680120172344000
    assert ev["local_ts"][0] == 1618680120200000000


def test_explicit_unit_overrides_magnitude(tmp_path):
    p = write(tmp_path, "t.jsonl", '{"ts": 1700000000, "bids": [["1", "1"]], "asks": []}\n')
    ev, _ = convert_snapshot_files([p], "jsonl", csv_ts_unit="ms")
    assert ev["exch_ts"][0] == 1_700_000_000 * 10**6


def test_mixed_units_are_an_error(tmp_path):
    p = write(tmp_path, "t.jsonl",
              '{"ts": 1700000000, "bids": [], "asks": []}\n{"ts": 1700000000001, "bids": [], "asks": []}\n')
    raises_at(p, 2, "mixed units", "jsonl")


def test_crossed_counted_zero_size_skipped(tmp_path):
    p = write(tmp_path, "c.jsonl",
              '{"ts": 1, "bids": [["101", "1"], ["100", "0"]], "asks": [["100.5", "2"]]}\n'
              '{"ts": 2, "bids": [["100", "1"]], "asks": [["100", "2"]]}\n')
    ev, meta = convert_snapshot_files([p], "jsonl")
    rep = meta["report"]
    assert rep["crossed_snapshots"] == 2 and rep["zero_size_levels_skipped"] == 1 and rep["levels"] == 4
    assert _core.replay(ev)["crossed"] == 2


def test_several_files_number_snapshots_on(tmp_path):
    a = write(tmp_path, "a.jsonl", '{"ts": 1, "bids": [["1", "1"]], "asks": []}\n')
    b = write(tmp_path, "b.jsonl", '\n{"ts": 2, "bids": [["1", "2"]], "asks": []}\n')
    ev, meta = convert_snapshot_files([a, b], "jsonl")
    assert [s["name"] for s in meta["sources"]] == ["a.jsonl", "b.jsonl"]
    clears = ev[ev["kind"] == CLEAR]
    assert clears["file"].tolist() == [0, 1] and clears["line"].tolist() == [1, 2]
    assert clears["update_id"].tolist() == [1, 2]


CSV_TEXT = (
    "time,bp1,bs1,ap1,as1,bp2,bs2,ap2,as2\n"
    "2024-01-02T03:04:05.5Z,99.5,1,100,2,99,3,100.5,4\n"
    "\n"
    "2024-01-02T03:04:06Z,99.5,1,100,2,,,100.5,4\n"
)


def test_csv_round_trip(tmp_path):
    p = write(tmp_path, "w.csv", CSV_TEXT)
    kw = dict(csv_ts_column="time", csv_bid_price="bp{i}", csv_bid_size="bs{i}",
              csv_ask_price="ap{i}", csv_ask_size="as{i}")
    ev, meta = convert_snapshot_files([p], "csv", symbol="X", exchange="ex", **kw)
    rep = meta["report"]
    assert (meta["symbol"], meta["exchange"], meta["tick_size"], meta["lot_size"]) == ("X", "ex", "0.5", "1")
    assert rep["lines"] == {"header": 1, "snapshot": 2, "blank": 1}
    assert rep["empty_levels_skipped"] == 1 and rep["levels"] == 7
    ts, book, _ = _core.sample_top(ev, 2, 0)
    assert ts.tolist() == [1704164645_500000000, 1704164646_000000000]
    assert book[0].tolist() == [[199, 1, 200, 2], [198, 3, 201, 4]]
    assert book[1].tolist() == [[199, 1, 200, 2], [0, 0, 201, 4]]
    assert ev[ev["kind"] == CLEAR]["line"].tolist() == [2, 4]
    # csv_levels limits the levels read
    ev1, meta1 = convert_snapshot_files([p], "csv", csv_levels=1, **kw)
    assert meta1["report"]["levels"] == 4


def test_csv_default_templates_from_zero(tmp_path):
    p = write(tmp_path, "d.csv", "ts,bid_price_0,bid_size_0,ask_price_0,ask_size_0\n1700000000123,1.5,2,1.75,3\n")
    ev, meta = convert_snapshot_files([p], "csv")
    assert meta["symbol"] == "UNKNOWN" and meta["tick_size"] == "0.25"
    assert ev["exch_ts"][0] == 1700000000123 * 10**6
    assert ev["price"].tolist() == [0, 6, 7]


def test_csv_missing_column(tmp_path):
    p = write(tmp_path, "m.csv", "ts,bid_price_1,bid_size_1,ask_price_1\n1,1,1,2\n")
    err = raises_at(p, 1, "missing column 'ask_size_1'", "csv")
    assert "header line 1" in str(err)
    raises_at(p, 1, "missing column 'when'", "csv", csv_ts_column="when")
    raises_at(p, 1, "missing column 'bid_price_2'", "csv", csv_levels=2)


def test_csv_non_numeric_price(tmp_path):
    p = write(tmp_path, "n.csv", "ts,bid_price_0,bid_size_0,ask_price_0,ask_size_0\n1,1,1,2,1\n2,abc,1,2,1\n")
    raises_at(p, 3, "bid level 1.*'abc'", "csv")


def test_csv_wrong_column_count(tmp_path):
    p = write(tmp_path, "n.csv", "ts,bid_price_0,bid_size_0,ask_price_0,ask_size_0\n1,1,1,2\n")
    raises_at(p, 2, "expected 5 columns", "csv")


def test_jsonl_malformed_json(tmp_path):
    p = write(tmp_path, "bad.jsonl", '{"ts": 1, "bids": [], "asks": []}\n{"ts": 2, "bids": [\n')
    raises_at(p, 2, "malformed JSON", "jsonl")


def test_jsonl_missing_field(tmp_path):
    p = write(tmp_path, "bad.jsonl", '{"ts": 1, "bids": []}\n')
    raises_at(p, 1, "missing field 'asks'", "jsonl")


def test_jsonl_non_numeric_price(tmp_path):
    p = write(tmp_path, "bad.jsonl", '{"ts": 1, "bids": [["1", "1"]], "asks": [["x1", "1"]]}\n')
    raises_at(p, 1, "'asks' level 1.*x1", "jsonl")
    p = write(tmp_path, "neg.jsonl", '{"ts": 1, "bids": [[-1, "1"]], "asks": []}\n')
    raises_at(p, 1, "'bids' level 1", "jsonl")


def test_off_grid_price_with_tick_size(tmp_path):
    p = write(tmp_path, "g.jsonl",
              '{"ts": 1, "bids": [["100.01", "1"]], "asks": []}\n{"ts": 2, "bids": [["100.005", "1"]], "asks": []}\n')
    ev, meta = convert_snapshot_files([p], "jsonl", tick_size="0.005")
    assert ev["price"].tolist() == [0, 20002, 0, 20001] and meta["tick_size_source"] == "option"
    raises_at(p, 2, "price 100.005 is not a multiple of the tick size 0.01", "jsonl", tick_size="0.01")
    raises_at(p, 1, "qty 1 is not a multiple of the lot size 0.3", "jsonl", lot_size="0.3")


def test_non_monotonic_levels(tmp_path):
    p = write(tmp_path, "nm.jsonl",
              '{"ts": 1, "bids": [["100", "1"]], "asks": [["101", "1"]]}\n'
              '{"ts": 2, "bids": [["100", "1"], ["100.5", "1"]], "asks": [["101", "1"]]}\n')
    raises_at(p, 2, "bids: level 2 price 100.5 after level 1 price 100", "jsonl")
    p = write(tmp_path, "nm2.jsonl", '{"ts": 1, "bids": [], "asks": [["101", "1"], ["101", "1"]]}\n')
    raises_at(p, 1, "strictly ascending", "jsonl")


def test_bad_options_and_formats(tmp_path):
    p = write(tmp_path, "a.jsonl", '{"ts": 1, "bids": [], "asks": []}\n')
    with pytest.raises(ValueError, match="format"):
        convert_snapshot_files([p], "parquet")
    with pytest.raises(ValueError, match="csv_ts_unit"):
        convert_snapshot_files([p], "jsonl", csv_ts_unit="minutes")
    with pytest.raises(ValueError, match="only for format 'csv'"):
        convert_snapshot_files([p], "jsonl", csv_levels=3)
    with pytest.raises(ValueError, match=r"\{i\}"):
        convert_snapshot_files([p], "csv", csv_bid_price="bid_price")
    assert set(SNAPSHOT_FORMATS) == {"jsonl", "csv", "bitfinex", "coinbase", "bitstamp", "lobster"}


def test_bitstamp_bad_lines(tmp_path):
    good = '1430438404645 trade {"price": 236.47, "amount": 0.21144331, "id": 8111041}\n'
    p = tmp_path / "b.log.bz2"
    p.write_bytes(bz2.compress((good + "1430438404646 order_book {not json}\n").encode()))
    raises_at(p, 2, "order_book: malformed JSON", "bitstamp")
    p.write_bytes(bz2.compress((good + "1430438404646 ticker {}\n").encode()))
    raises_at(p, 2, "unknown message type 'ticker'", "bitstamp")
    p.write_bytes(bz2.compress((good + '1430438404646 order_book {"bids": [["1", "1"]], "asks": [["abc", "1"]]}\n').encode()))
    raises_at(p, 2, "'asks' level 1", "bitstamp")
    p.write_bytes(bz2.compress((good + '1430438404646 order_changed {"price": "236.47", "amount": "1"}\n').encode()))
    raises_at(p, 2, "order_changed: expected price, amount, id and order_type", "bitstamp")
    p.write_bytes(bz2.compress((good + '14304384046 order_changed {"price": "236.47"}\n').encode()))
    raises_at(p, 2, "expected '<local_ts_ms \\(13 digits\\)> <type> <json>'", "bitstamp")


def test_bitfinex_bad_json(tmp_path):
    p = write(tmp_path, "f.tsv", "\t".join(["1", "1", "2", "0", "0", "0", "[{bad", "[]", "2018-01-26 17:43:45"]) + "\n")
    raises_at(p, 1, "column 7 \\(bids\\): malformed JSON", "bitfinex")


def test_coinbase_off_grid_distance(tmp_path):
    header = ",system_time,midpoint,spread,bids_distance_0,bids_notional_0,asks_distance_0,asks_notional_0\n"
    ok = "0,2021-04-17 17:22:00.172344+00:00,100.005,0.01,-0.00005,100.0,0.00005,100.0\n"
    bad = "1,2021-04-17 17:23:00.172344+00:00,100.005,0.01,-0.0001,100.0,0.00005,100.0\n"
    p = write(tmp_path, "cb.csv", header + ok)
    ev, meta = convert_snapshot_files([p], "coinbase")
    assert ev["price"].tolist() == [0, 10000, 10001]
    assert ev["qty"].tolist() == [0, 100000000, 99990001]  # 100 USD / 100.01 = 0.999900009999 BTC
    p = write(tmp_path, "cb2.csv", header + ok + bad)
    raises_at(p, 3, "more than 0.01 tick", "coinbase")


def test_sniff_handwritten(tmp_path):
    assert sniff_format(write(tmp_path, "a.txt", "hello world\n")) is None
    assert sniff_format(write(tmp_path, "b.txt", '1722470400123 {"stream": "x@depth", "data": {}}\n')) is None
    assert sniff_format(write(tmp_path, "c.csv", "ts,bid_price_0,bid_size_0,ask_price_0,ask_size_0\n")) == "csv"
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
        gz.write(b'{"ts": 1, "bids": [], "asks": []}\n')
    gzp = tmp_path / "d.jsonl.gz"
    gzp.write_bytes(buf.getvalue())
    assert sniff_format(gzp) == "jsonl"


def test_bitstamp_quotes_fill_from_trades_with_inferred_sides(bitstamp, tmp_path):
    """The log has no exchange time: the market stream between rows is stamped on the rows' local clock
    (stamped 0, no resting order went live before it), and its trades carry the inferred sides, so a
    quote at the touch fills."""
    from trader.backtest.suite import BaselineOptions, run_baselines
    from trader.data.dataset import write_dataset
    from trader.sim import load_market

    ev, meta = bitstamp
    _, _, _, records, _, trades = _core.sample_market(ev, 10, 2_000_000_000, "local")
    assert trades == 4_251 and records[:, 0].min() >= ev["local_ts"].min()
    write_dataset(tmp_path / "bs", ev, meta)
    market = load_market(str(tmp_path / "bs"), interval_ms=2000)
    assert market.clock == "local"
    results, notes = run_baselines(market, ev, {"actions": "quote"}, 1_000, 1_900, BaselineOptions())
    fixed = next(r for r in results if r.name == "fixed_spread")
    assert fixed.metrics["trades"] > 0 and fixed.metrics["fill_ratio"] > 0, fixed.metrics
    # Avellaneda-Stoikov's intensity is fitted on the same clock (it read exchange time: no trade, no fit)
    stoikov = next((r for r in results if r.name == "avellaneda_stoikov"), None)
    assert stoikov is not None, notes
    assert stoikov.metrics["trades"] > 0, notes
