"""Binance raw feed conversion: the book equals bookTicker on every recorded sequence, and every
kind of bad input gets an error naming the file, the line and the update ids."""

from __future__ import annotations

import gzip

import numpy as np
import orjson
import pytest

from conftest import BINANCE_RAW, NEXO_RAW, shared
from trader import _core
from trader.data.binance import convert_sequence, group_sequences
from trader.data.errors import FeedError
from trader.data.events import EventKind

# Comparisons listed in ../shared/data/README.md ("Verified book reconstruction").
SEQUENCES = [
    ("spot/btcusdt_20240808.gz spot/btcusdt_20240809.gz", 1072),
    ("spot/ethusdt_20240808.gz spot/ethusdt_20240809.gz", 1056),
    ("usdm/btcusdt_20240718.gz usdm/btcusdt_20240719.gz", 625),
    ("usdm/ethusdt_20240718.gz usdm/ethusdt_20240719.gz", 834),
    ("usdm/btcusdt_20240808.gz", 629),
    ("usdm/ethusdt_20240808.gz", 551),
    ("cm/btcusd_perp_20240808.gz cm/btcusd_perp_20240809.gz", 1885),
    ("cm/ethusd_perp_20240808.gz cm/ethusd_perp_20240809.gz", 2278),
]


@pytest.mark.parametrize("files,expected", SEQUENCES, ids=[s[0].split()[0] for s in SEQUENCES])
def test_book_equals_bookticker_on_every_sequence(files, expected):
    paths = [shared("binance_hftbacktest_raw_feed", f) for f in files.split()]
    (seq,) = group_sequences(paths)
    events, meta = convert_sequence(seq)
    check = _core.check_tickers(events)
    assert check["compared"] == expected
    assert check["matched"] == expected and check["mismatched"] == 0
    assert check["replay"]["crossed"] == 0
    assert meta["report"]["gaps"] == []


def test_nexo_34_hours_three_files():
    paths = sorted(shared("binance_spot_nexousdt_raw_feed").glob("*.gz"))
    (seq,) = group_sequences(paths)
    assert [f.ts_unit for f in seq] == ["us"] * 3
    events, meta = convert_sequence(seq)
    check = _core.check_tickers(events)
    assert (check["compared"], check["matched"]) == (17468, 17468)
    assert meta["report"]["lines"]["depth"] == 99030
    assert meta["report"]["lines"]["trade"] == 18817
    assert meta["tick_size"] == "0.001"


def test_grouping_splits_instruments_and_sequences():
    paths = sorted(shared("binance_hftbacktest_raw_feed", "usdm").glob("btcusdt_*.gz"))
    seqs = group_sequences(paths)
    assert [[f.path.name for f in s] for s in seqs] == [
        ["btcusdt_20240718.gz", "btcusdt_20240719.gz"],
        ["btcusdt_20240808.gz"],
    ]
    assert all(s[0].instrument.market == "usdm" for s in seqs)


def test_counts_of_every_line_kind_add_up():
    path = shared("binance_hftbacktest_raw_feed", "spot", "btcusdt_20240808.gz")
    events, meta = convert_sequence(group_sequences([path])[0])
    lines = meta["report"]["lines"]
    assert lines == {"snapshot": 1, "depth": 3451, "bookTicker": 28040, "trade": 9757}  # data README
    kinds = np.bincount(events["kind"], minlength=6)
    assert kinds[EventKind.TRADE] == 9757
    assert kinds[EventKind.BOOK_TICKER] == 2 * 28040
    rep = meta["report"]
    assert rep["diffs_applied"] + rep["diffs_stale"] + rep["diffs_unapplied"] == 3451


# ---- bad input -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spot_lines():
    path = shared("binance_hftbacktest_raw_feed", "spot", "btcusdt_20240808.gz")
    with gzip.open(path, "rb") as fh:
        return [next(fh).rstrip(b"\n") for _ in range(400)]


def write_feed(tmp_path, lines, name="feed.gz"):
    path = tmp_path / name
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    return path


def convert(path, **kw):
    return convert_sequence(group_sequences([path])[0], **kw)


def depth_line_indices(lines):
    snap = next(i for i, ln in enumerate(lines) if b"lastUpdateId" in ln)
    return snap, [i for i, ln in enumerate(lines) if b"@depth" in ln and i > snap + 5]


def test_update_id_gap_is_an_error_naming_file_line_and_ids(tmp_path, spot_lines):
    _, depth = depth_line_indices(spot_lines)
    removed = depth[3]
    lines = spot_lines[:removed] + spot_lines[removed + 1 :]
    path = write_feed(tmp_path, lines)
    gap_line = depth[4]  # 0-based index in the original = 1-based line in the new file
    with pytest.raises(FeedError) as exc:
        convert(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:{gap_line}: update-id gap")
    u_prev = orjson.loads(spot_lines[depth[2]].split(b" ", 1)[1])["data"]["u"]
    assert f"previous u={u_prev}" in msg


def test_gap_in_resync_mode_is_reported_and_book_cleared(tmp_path, spot_lines):
    _, depth = depth_line_indices(spot_lines)
    lines = spot_lines[: depth[3]] + spot_lines[depth[3] + 1 :]
    events, meta = convert(write_feed(tmp_path, lines), on_gap="resync")
    rep = meta["report"]
    assert len(rep["gaps"]) == 1 and rep["resyncs"] == 1
    assert rep["diffs_unapplied"] > 0  # no later snapshot: counted, not silently dropped
    clears = events[events["kind"] == EventKind.BOOK_CLEAR]
    assert len(clears) == 2  # the snapshot's and the gap's


def test_malformed_json_line(tmp_path, spot_lines):
    lines = list(spot_lines)
    lines[20] = lines[20][:-15]
    path = write_feed(tmp_path, lines)
    with pytest.raises(FeedError, match=rf"^{path}:21: malformed JSON"):
        convert(path)


def test_line_without_timestamp(tmp_path, spot_lines):
    lines = list(spot_lines)
    lines[30] = lines[30].split(b" ", 1)[1]
    path = write_feed(tmp_path, lines)
    with pytest.raises(FeedError, match=rf"^{path}:31: "):
        convert(path)


def test_truncated_gzip(tmp_path, spot_lines):
    path = write_feed(tmp_path, spot_lines)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeedError, match=rf"^{path}:\d+: .*(truncated|malformed)"):
        convert(path)


def test_unknown_stream_is_an_error_unless_ignored(tmp_path, spot_lines):
    lines = list(spot_lines)
    lines.insert(40, b'1723161254206652999 {"stream":"btcusdt@fooBar","data":{"e":"fooBar","s":"BTCUSDT"}}')
    path = write_feed(tmp_path, lines)
    with pytest.raises(FeedError, match=rf"^{path}:41: unknown stream kind 'fooBar'") as exc:
        convert(path)
    assert exc.value.hint[:2] == ("ignore_streams", "fooBar")
    assert str(exc.value).endswith("(pass ignore_streams=['fooBar'] to go on)")
    _, meta = convert(path, ignore_streams=["fooBar"])
    assert meta["report"]["ignored_streams"] == {"fooBar": 1}


def test_streams_without_book_data_are_counted_and_skipped(tmp_path, spot_lines):
    extra = [
        b'1723161254206652999 {"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","s":"BTCUSDT"}}',
        b'1723161254206653999 {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT"}}',
        b'1723161254206654999 {"stream":"btcusdt@kline_1m","data":{"e":"kline","s":"BTCUSDT"}}',
        b'1723161254206655999 {"stream":"!ticker@arr","data":{"e":"24hrTicker"}}',
        b'1723161254206656999 {"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","s":"BTCUSDT"}}',
    ]
    lines = spot_lines[:40] + extra + spot_lines[40:]
    events, meta = convert(write_feed(tmp_path, lines))
    rep = meta["report"]
    assert rep["skipped_streams"] == {"markPrice@1s": 2, "aggTrade": 1, "kline_1m": 1, "!ticker@arr": 1}
    assert rep["lines"]["non_book_stream"] == 5
    base, _ = convert(write_feed(tmp_path, spot_lines, "base.gz"))
    assert np.array_equal(events[["kind", "price", "qty", "update_id"]], base[["kind", "price", "qty", "update_id"]])


def test_duplicated_line_is_reported_as_a_duplicate_not_a_gap(tmp_path, spot_lines):
    _, depth = depth_line_indices(spot_lines)
    i = depth[3]
    lines = spot_lines[: i + 1] + [spot_lines[i]] + spot_lines[i + 1 :]
    events, meta = convert(write_feed(tmp_path, lines))
    rep = meta["report"]
    assert rep["gaps"] == [] and rep["lines"]["duplicate_line"] == 1
    assert rep["duplicates"]["lines"] == [{"file": "feed.gz", "line": i + 2}]
    # The same diff received again later (another receive time): a duplicate diff, skipped.
    ts, payload = spot_lines[i].split(b" ", 1)
    again = str(int(ts) + 5).encode() + b" " + payload
    lines = spot_lines[: i + 1] + [again] + spot_lines[i + 1 :]
    events2, meta = convert(write_feed(tmp_path, lines, "again.gz"))
    rep = meta["report"]
    assert rep["gaps"] == [] and rep["diffs_duplicate"] == 1
    assert rep["duplicates"]["diffs"] == [{"file": "again.gz", "line": i + 2}]
    assert np.array_equal(events["price"], events2["price"])


def test_local_clock_stepping_back_is_reported(tmp_path, spot_lines):
    lines = list(spot_lines)
    ts, payload = lines[100].split(b" ", 1)
    lines[100] = str(int(ts) - 10_000_000_000).encode() + b" " + payload  # 10 s back
    _, meta = convert(write_feed(tmp_path, lines))
    back = meta["report"]["local_ts_backwards"]
    prev = int(lines[99].split(b" ", 1)[0])
    assert back["count"] == 1 and back["max_step_ns"] == prev - (int(ts) - 10_000_000_000)
    assert back["first"] == [{"file": "feed.gz", "line": 101, "from_ns": prev, "to_ns": int(ts) - 10_000_000_000}]


def test_empty_file_says_it_is_empty(tmp_path):
    for name, data in (("empty.gz", gzip.compress(b"")), ("blank.txt", b"\n \n")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(FeedError, match=rf"^{path}: the file is empty"):
            group_sequences([path])


def test_crossed_book_is_an_error_naming_the_update_id(tmp_path, spot_lines):
    snap, depth = depth_line_indices(spot_lines)
    i = depth[5]
    ts, payload = spot_lines[i].split(b" ", 1)
    msg = orjson.loads(payload)
    msg["data"]["b"].append(["99999.00000000", "1.00000000"])  # a bid far above every ask
    lines = list(spot_lines)
    lines[i] = ts + b" " + orjson.dumps(msg)
    path = write_feed(tmp_path, lines)
    with pytest.raises(FeedError) as exc:
        convert(path)
    assert str(exc.value).startswith(f"{path}:{i + 1}: crossed book after the message with update id u={msg['data']['u']}")
    _, meta = convert(path, on_gap="resync")
    assert meta["report"]["crossed"] and meta["report"]["crossed"][0]["line"] == i + 1


def test_missing_field_and_bad_number(tmp_path, spot_lines):
    snap, depth = depth_line_indices(spot_lines)
    i = depth[1]
    ts, payload = spot_lines[i].split(b" ", 1)
    msg = orjson.loads(payload)
    del msg["data"]["U"]
    lines = list(spot_lines)
    lines[i] = ts + b" " + orjson.dumps(msg)
    path = write_feed(tmp_path, lines)
    with pytest.raises(FeedError, match=rf"^{path}:{i + 1}: depth message: missing field 'U'"):
        convert(path)
    msg["data"]["U"] = 1
    msg["data"]["b"] = [["12x.5", "1"]]
    lines[i] = ts + b" " + orjson.dumps(msg)
    path = write_feed(tmp_path, lines, "feed2.gz")
    with pytest.raises(FeedError, match=rf"^{path}:{i + 1}: field 'b': expected \[price, qty\]"):
        convert(path)


def test_mixed_timestamp_units_are_refused(tmp_path, spot_lines):
    lines = list(spot_lines)
    lines[50] = lines[50][3:]  # 16-digit timestamp among 19-digit ones
    path = write_feed(tmp_path, lines)
    with pytest.raises(FeedError, match=rf"^{path}:51: local timestamp has 16 digits"):
        convert(path)


def test_no_snapshot_is_an_error(tmp_path, spot_lines):
    lines = [ln for ln in spot_lines if b"lastUpdateId" not in ln]
    path = write_feed(tmp_path, lines)
    with pytest.raises(FeedError, match="no REST depth snapshot"):
        convert(path)


def test_off_grid_tick_size_option(tmp_path, spot_lines):
    path = write_feed(tmp_path, spot_lines)
    with pytest.raises(FeedError, match="not a multiple of the tick size 0.1"):
        convert(path, tick_size="0.1")
    events, meta = convert(path, tick_size="0.01", lot_size="0.00001")
    assert meta["tick_size"] == "0.01" and meta["lot_size"] == "0.00001"


def test_buffered_diffs_before_snapshot_are_applied_not_dropped(spot_lines, tmp_path):
    # README quirk: 0 to 2 diffs before the snapshot have u > lastUpdateId and must be applied.
    snap, _ = depth_line_indices(spot_lines)
    last_update_id = orjson.loads(spot_lines[snap].split(b" ", 1)[1])["lastUpdateId"]
    before = [orjson.loads(ln.split(b" ", 1)[1])["data"] for ln in spot_lines[:snap] if b"@depth" in ln]
    late = [d for d in before if d["u"] > last_update_id]
    events, meta = convert(write_feed(tmp_path, spot_lines))
    applied = set(events[events["kind"] == EventKind.BOOK_DELTA]["update_id"].tolist())
    assert all(d["u"] in applied for d in late)
    assert meta["report"]["diffs_stale"] == len(before) - len(late)
