"""The C++ Binance parser against its readable Python reference (trader.data.binance_reference):
identical event arrays and reports on every shared Binance file, through every reading path
(gzip and plain through the C++ reader, bzip2 through Python) and with every option."""

from __future__ import annotations

import bz2
import gzip

import numpy as np
import pytest

from conftest import BINANCE_RAW, NEXO_RAW, shared
from trader.data import binance_reference
from trader.data.binance import NON_BOOK_STREAMS, group_sequences, parse_sequence

SEQUENCES = [
    "spot/btcusdt_20240808.gz spot/btcusdt_20240809.gz",
    "spot/ethusdt_20240808.gz spot/ethusdt_20240809.gz",
    "usdm/btcusdt_20240718.gz usdm/btcusdt_20240719.gz",
    "usdm/ethusdt_20240718.gz usdm/ethusdt_20240719.gz",
    "usdm/btcusdt_20240808.gz",
    "usdm/ethusdt_20240808.gz",
    "cm/btcusd_perp_20240808.gz cm/btcusd_perp_20240809.gz",
    "cm/ethusd_perp_20240808.gz cm/ethusd_perp_20240809.gz",
]


def both(seq, **kw):
    kw.setdefault("non_book_streams", NON_BOOK_STREAMS)
    ours = parse_sequence(seq, **kw)
    ref = binance_reference.parse_sequence(seq, **kw)
    return ours, ref


def assert_same(ours, ref):
    ev, rep, tick, lot, used = ours
    ev_r, rep_r, tick_r, lot_r, used_r = ref
    assert ev.dtype == ev_r.dtype and len(ev) == len(ev_r)
    assert np.array_equal(ev, ev_r)
    assert rep == rep_r
    assert (tick, lot, used) == (tick_r, lot_r, used_r)


@pytest.mark.parametrize("files", SEQUENCES, ids=[s.split()[0] for s in SEQUENCES])
def test_identical_on_every_shared_binance_file(files):
    (seq,) = group_sequences([shared("binance_hftbacktest_raw_feed", f) for f in files.split()])
    assert_same(*both(seq))


def test_identical_on_nexo_34_hours():
    (seq,) = group_sequences(sorted(shared("binance_spot_nexousdt_raw_feed").glob("*.gz")))
    assert_same(*both(seq))


def test_identical_through_plain_and_bzip2_files_with_options(tmp_path):
    src = shared("binance_hftbacktest_raw_feed", "usdm", "ethusdt_20240718.gz")
    text = gzip.decompress(src.read_bytes())
    plain, bz = tmp_path / "ethusdt_20240718.txt", tmp_path / "ethusdt_20240718.bz2"
    plain.write_bytes(text)
    bz.write_bytes(bz2.compress(text))
    (ref_seq,) = group_sequences([src])
    ref = parse_sequence(ref_seq)
    for path in (plain, bz):
        (seq,) = group_sequences([path])
        assert seq[0].first_local_ns == ref_seq[0].first_local_ns and seq[0].has_snapshot
        ours = parse_sequence(seq)
        assert np.array_equal(ours[0], ref[0]) and ours[1] == ref[1]
        until = seq[0].first_local_ns + 60_000_000_000
        assert_same(*both(seq, until_ns=until, tick=10**10, lot=10**9, ignore_streams=("trade",)))
