"""Fuzzing the Binance raw-feed converter with hypothesis.

Small raw feed files are built from the first lines of a real recording (spot BTCUSDT 2024-08-08,
../shared/data/binance_hftbacktest_raw_feed, README section 1) and mutated: byte flips, truncations,
deleted / duplicated / swapped lines, fields replaced by random JSON values, extra unknown streams,
broken timestamps, truncated or corrupt gzip. The property: conversion (the C++ parser) either succeeds, and then the
C++ core replays and checks the events without an exception, or it raises FeedError (a ValueError)
whose message starts with the path of the offending file. Any other exception is a bug. And the
Python reference parser (trader.data.binance_reference) must agree: the same events and meta, or a
FeedError at the same file and line.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import itertools
import json
import lzma
import os
import re
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from trader import _core
from trader.data import binance_reference
from trader.data.binance import convert_sequence, group_sequences, sequence_name
from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAW = SHARED_DATA / "binance_hftbacktest_raw_feed" / "spot" / "btcusdt_20240808.gz"
N_LINES = 80
SNAPSHOT_LEVELS = 25  # the real snapshot has 1000 levels a side (64 kB); keep the best few

pytestmark = pytest.mark.skipif(not RAW.exists(), reason=f"real data not found at {RAW} (../shared/data)")

# TRADER_FUZZ_SCALE=20 multiplies the number of examples, for a long run (default: about 20 s).
SCALE = float(os.environ.get("TRADER_FUZZ_SCALE", "1"))
FUZZ_SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


# ---- the seed data -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def real_lines() -> tuple[bytes, ...]:
    """The first N_LINES lines of the recording, unchanged."""
    out = []
    with gzip.open(RAW, "rb") as fh:
        for raw in itertools.islice(fh, N_LINES):
            out.append(raw.rstrip(b"\n"))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def base_lines() -> tuple[bytes, ...]:
    """real_lines() with the REST snapshot cut to its best SNAPSHOT_LEVELS levels a side, so that
    mutations land on every kind of line, not mostly in the 64 kB snapshot."""
    out = []
    for raw in real_lines():
        ts, _, body = raw.partition(b" ")
        msg = orjson.loads(body)
        if "lastUpdateId" in msg:
            msg["bids"] = msg["bids"][:SNAPSHOT_LEVELS]
            msg["asks"] = msg["asks"][:SNAPSHOT_LEVELS]
            raw = ts + b" " + orjson.dumps(msg)
        out.append(raw)
    return tuple(out)


# ---- running the converter ---------------------------------------------------------------------


def outcome(out) -> str:
    """A label for hypothesis statistics (--hypothesis-show-statistics): ok, or the error's kind."""
    if not isinstance(out, FeedError):
        return "ok"
    return "FeedError: " + re.sub(r"\d+", "N", re.split(r"[,:('\"{\[]| got", out.reason)[0].strip())


def named_or_converted(out, path: Path) -> bool:
    """What one file's conversion may end in: a FeedError naming the file (and a line >= 1, if any), or one
    sequence with events whose only source is the file."""
    if isinstance(out, FeedError):
        return out.path == str(path) and (out.line is None or out.line >= 1)
    return len(out) == 1 and len(out[0][0]) > 0 and [src["name"] for src in out[0][1]["sources"]] == [path.name]


def _convert_checked(paths, parse, kwargs):
    try:
        results = []
        for seq in group_sequences(paths):
            events, meta = convert_sequence(seq, parse=parse, **kwargs)
            sequence_name(seq)  # the CLI names the output folder after it
            assert events.dtype == EVENT_DTYPE
            check = _core.check_tickers(events)  # must not raise on what the converter produced
            assert check["replay"]["events"] == len(events)
            assert check["compared"] <= check["tickers"]
            stats = _core.replay(events)
            assert (
                stats["level_updates"] + stats["snapshots"] + stats["trades"] + stats["ticker_events"]
                == stats["events"]
            )
            assert int(events["file"].max(initial=0)) < len(meta["sources"])
            results.append((events, meta))
        return results
    except FeedError as exc:
        msg = str(exc)
        assert isinstance(exc, ValueError)
        assert any(msg.startswith(str(p)) for p in paths), f"message does not start with a path: {msg!r}"
        assert exc.path in {str(p) for p in paths}, exc.path
        assert exc.line is None or exc.line >= 1
        return exc


def convert_all(paths: list[Path], **kwargs) -> list[tuple[np.ndarray, dict]] | FeedError:
    """Group and convert `paths` with the C++ parser and with the Python reference; replay and
    ticker-check every result in the C++ core. Both must give the same events and meta, or a
    FeedError at the same file and line. Returns the results, or the FeedError raised; any other
    exception propagates (a bug)."""
    out = _convert_checked(paths, convert_sequence.__kwdefaults__["parse"], kwargs)
    ref = _convert_checked(paths, binance_reference.parse_sequence, kwargs)
    if isinstance(out, FeedError) or isinstance(ref, FeedError):
        assert isinstance(out, FeedError) and isinstance(ref, FeedError), f"C++: {out!s:.300}\nreference: {ref!s:.300}"
        if "compressed data" in out.reason or "compressed data" in ref.reason:
            # zlib finds damage only some bytes after it: how much text comes out first depends on
            # the reader's chunk sizes (Python's gzip and ours differ), so only the file must agree.
            assert out.path == ref.path, f"C++: {out}\nreference: {ref}"
        else:
            assert (out.path, out.line) == (ref.path, ref.line), f"C++: {out}\nreference: {ref}"
    else:
        assert len(out) == len(ref)
        for (ev, meta), (ev_r, meta_r) in zip(out, ref):
            assert np.array_equal(ev, ev_r)
            assert meta == meta_r
    return out


_counter = itertools.count()


def write_feed(folder: Path, data: bytes, codec: str = "gz", name: str = "btcusdt") -> Path:
    path = folder / f"{name}_{next(_counter)}.{codec}"
    if codec == "gz":
        blob = gzip.compress(data, compresslevel=1, mtime=0)
    elif codec == "bz2":
        blob = bz2.compress(data, compresslevel=1)
    elif codec == "xz":
        blob = lzma.compress(data)
    else:
        blob = data
    path.write_bytes(blob)
    return path


def join(lines) -> bytes:
    return b"".join(line + b"\n" for line in lines)


# ---- the unmutated seed converts cleanly (otherwise the fuzz tests would test nothing) ---------


@pytest.mark.parametrize("trim", [True, False], ids=["trimmed-snapshot", "real-snapshot"])
def test_seed_converts(tmp_path, trim):
    lines = base_lines() if trim else real_lines()
    path = write_feed(tmp_path, join(lines))
    out = convert_all([path])
    assert not isinstance(out, FeedError), out
    [(events, meta)] = out
    check = _core.check_tickers(events)
    # 80 lines hold no bookTicker with the update id of a depth message (the first is near line
    # 300), so compared is 0 here; the book must still never be crossed nor mismatch.
    assert check["mismatched"] == 0 and check["replay"]["crossed"] == 0
    assert check["tickers"] > 0 and check["replay"]["trades"] > 0
    report = meta["report"]
    assert report["gaps"] == [] and report["lines"]["snapshot"] == 1 and report["diffs_applied"] > 0


# ---- mutation strategies -----------------------------------------------------------------------

# JSON values that probe the converter's checks: wrong types, signs, sizes, decimals, 64-bit edges.
_NUMERIC_TEXT = st.sampled_from(
    [
        "0", "0.0", "-1", "1", "1e5", "1E-3", "+1", " 1", "1.", ".5", "0x10", "NaN", "inf", "",
        "61837.63000000", "61837.630000000001", "0.000000000001", "0.0000000000001",
        "99999999999999999999", "9223372036854775807", "18446744073709551616", "1" * 400, "٣",
    ]
)
_SPECIAL_INTS = st.sampled_from(
    [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**19, 10**30, -(2**63)]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | _SPECIAL_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | _NUMERIC_TEXT
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _json_paths(obj, prefix=()):
    """Every (dict key | list index) path in a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _json_paths(v, prefix + (i,))


def _set_path(obj, path, value, delete=False):
    for key in path[:-1]:
        obj = obj[key]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


def _dumps(obj) -> bytes:
    # json, not orjson: it writes integers of any size (orjson refuses more than 64 bits)
    return json.dumps(obj, separators=(",", ":")).encode()


_LINE_KINDS = {"depth": b"@depth", "snapshot": b'"lastUpdateId"', "bookTicker": b"@bookTicker", "trade": b"@trade"}


def pick_line(lines: list[bytes], idx) -> int:
    """idx is an int (any line) or (line kind, int): the int-th line of that kind, if there is one."""
    if isinstance(idx, int):
        return idx % len(lines)
    kind, k = idx
    marker = _LINE_KINDS[kind]
    hits = [i for i, raw in enumerate(lines) if marker in raw[:60]]
    return hits[k % len(hits)] if hits else k % len(lines)


def perturb(old, spec):
    """A value of the same JSON type as `old`, close to or far from it: what a buggy exchange or a
    corrupt recording would more likely write than an arbitrary value."""
    delta, decimal_text, choice = spec
    if isinstance(old, bool) or old is None:
        return not old
    if isinstance(old, int):  # ids and times: off by a little, or far out of range
        return [old + delta, max(0, old + delta), abs(delta), 0, old * 10**6, 2**64 - 1][choice % 6]
    if isinstance(old, str):
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", old):  # prices and sizes
            return [
                decimal_text,
                "0",
                old + "1",  # one more decimal: a finer tick / lot grid
                old.rstrip("0").rstrip(".") or "0",
                old.partition(".")[0] + "0" * 12,  # 1e12 times larger: past int64 on a fine grid
                "0.000000000001",  # the finest grid: every other value becomes huge in ticks
            ][choice % 6]
        return [old[:-1], old.upper(), old.lower(), old + "x"][choice % 4]
    if isinstance(old, list):
        return [old[1:], old[:-1], old[::-1], old + old[:1]][choice % 4]
    if isinstance(old, dict):
        return {k: v for i, (k, v) in enumerate(old.items()) if i != choice % max(1, len(old))}
    return old


def apply_line_op(lines: list[bytes], op) -> list[bytes]:
    if not lines:
        return lines
    kind = op[0]
    i = pick_line(lines, op[1])
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap":
        j = pick_line(lines, op[2])
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "move":
        j = pick_line(lines, op[2])
        lines.insert(j, lines.pop(i))
    elif kind == "truncate_line":
        lines[i] = lines[i][: op[2] % (len(lines[i]) + 1)]
    elif kind == "flip_line_byte":
        if lines[i]:
            k = op[2] % len(lines[i])
            b = bytearray(lines[i])
            b[k] ^= op[3]
            lines[i] = bytes(b)
    elif kind == "insert_bytes":
        k = op[2] % (len(lines[i]) + 1)
        lines[i] = lines[i][:k] + op[3] + lines[i][k:]
    elif kind == "timestamp":
        ts, sp, body = lines[i].partition(b" ")
        lines[i] = op[2] + sp + body
    elif kind in ("replace_field", "delete_field", "perturb_field"):
        ts, sp, body = lines[i].partition(b" ")
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            return lines
        paths = list(_json_paths(msg))
        if not paths:
            return lines
        path = paths[op[2] % len(paths)]
        if kind == "perturb_field":
            old = msg
            for key in path:
                old = old[key]
            _set_path(msg, path, perturb(old, op[3]))
        else:
            _set_path(msg, path, op[3] if kind == "replace_field" else None, delete=kind == "delete_field")
        lines[i] = ts + sp + _dumps(msg)
    elif kind == "unknown_stream":
        ts = lines[i].partition(b" ")[0]
        data = op[3] if isinstance(op[3], dict) else {"e": op[2], "E": 1723161255308, "s": "BTCUSDT", "x": op[3]}
        lines.insert(i, ts + b" " + _dumps({"stream": f"btcusdt@{op[2]}", "data": data}))
    elif kind == "raw_line":
        lines.insert(i, op[2])
    elif kind == "blank":
        lines.insert(i, op[2])
    return lines


_IDX = st.integers(min_value=0, max_value=10**6)
# a line: any, or the k-th line of one kind (bookTickers are 62 of the 80 lines: without this, field
# mutations would seldom reach the depth messages and the snapshot)
_LINE = _IDX | st.tuples(st.sampled_from(sorted(_LINE_KINDS)), _IDX)
_DECIMAL_TEXT = st.decimals(min_value=0, max_value=10**7, places=8, allow_nan=False, allow_infinity=False).map(
    lambda d: format(d, "f")
) | st.sampled_from(["61837.64", "61837.62", "61837.625", "0.00000001", "100000", "0.01"])
_PERTURB = st.tuples(
    st.integers(min_value=-3, max_value=3) | st.integers(min_value=-(2**64), max_value=2**64),
    _DECIMAL_TEXT,
    st.integers(min_value=0, max_value=5),
)
_BYTE = st.integers(min_value=1, max_value=255)
_STREAMS = st.sampled_from(["kline_1m", "aggTrade", "depth20", "depth@250ms", "ticker", "", "@", "trade@x"])
LINE_OPS = st.one_of(
    st.tuples(st.just("delete"), _IDX),
    st.tuples(st.just("duplicate"), _IDX),
    st.tuples(st.just("swap"), _IDX, _IDX),
    st.tuples(st.just("move"), _IDX, _IDX),
    st.tuples(st.just("truncate_line"), _IDX, _IDX),
    st.tuples(st.just("flip_line_byte"), _IDX, _IDX, _BYTE),
    st.tuples(st.just("insert_bytes"), _IDX, _IDX, st.binary(min_size=1, max_size=4)),
    st.tuples(
        st.just("timestamp"),
        _IDX,
        st.sampled_from([b"", b"0", b"1723161254", b"1723161254000", b"1723161254000000", b"9" * 19,
                         b"0" * 19, b"1" * 19, b"-723161254087891268", b"17231612540878912680"])
        | st.binary(max_size=20).filter(lambda b: b" " not in b and b"\n" not in b),
    ),
    st.tuples(st.just("replace_field"), _LINE, _IDX, JSON_VALUES),
    st.tuples(st.just("delete_field"), _LINE, _IDX),
    st.tuples(st.just("perturb_field"), _LINE, _IDX, _PERTURB),
    st.tuples(st.just("unknown_stream"), _IDX, _STREAMS, JSON_VALUES),
    st.tuples(st.just("raw_line"), _IDX, st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))),
    st.tuples(st.just("blank"), _IDX, st.sampled_from([b"", b" ", b"\t", b"\r"])),
)


@st.composite
def mutated_feed(draw, max_line_ops=6):
    """(file contents per file, codec per file): mutated lines, then byte-level damage, then the
    compressed stream damaged."""
    lines = list(base_lines())
    for op in draw(st.lists(LINE_OPS, min_size=1, max_size=max_line_ops)):
        lines = apply_line_op(lines, op)
    data = join(lines)
    # byte-level damage to the text
    n_byte_ops = draw(st.sampled_from([0, 0, 1, 2]))
    byte_op = st.tuples(st.sampled_from(["flip", "truncate", "cut_out"]), _IDX, _BYTE)
    for op in draw(st.lists(byte_op, min_size=n_byte_ops, max_size=n_byte_ops)):
        if not data:
            break
        k = op[1] % len(data)
        if op[0] == "flip":
            data = data[:k] + bytes([data[k] ^ op[2]]) + data[k + 1 :]
        elif op[0] == "truncate":
            data = data[:k]
        else:
            data = data[:k] + data[k + op[2] :]
    # split into one or two files (the second continues the first: no snapshot, same instrument)
    parts = [data]
    if draw(st.booleans()):
        nl = [i + 1 for i, c in enumerate(data) if c == 0x0A]
        if nl:
            cut = nl[draw(_IDX) % len(nl)]
            parts = [data[:cut], data[cut:]]
    codecs = [draw(st.sampled_from(["gz", "gz", "gz", "plain", "bz2", "xz"])) for _ in parts]
    # damage to the compressed stream
    n_blob_ops = draw(st.sampled_from([0, 0, 0, 1]))
    blob_op = st.tuples(st.sampled_from(["gz_truncate", "gz_flip", "gz_append"]), _IDX, _BYTE)
    blob_ops = draw(st.lists(blob_op, min_size=n_blob_ops, max_size=n_blob_ops))
    return parts, codecs, blob_ops


def write_mutated(folder: Path, parts, codecs, blob_ops) -> list[Path]:
    paths = [write_feed(folder, data, codec) for data, codec in zip(parts, codecs)]
    for op in blob_ops:
        p = paths[op[1] % len(paths)]
        blob = p.read_bytes()
        if not blob:
            continue
        k = (op[1] // 7) % len(blob)
        if op[0] == "gz_truncate":
            blob = blob[:k]
        elif op[0] == "gz_flip":
            blob = blob[:k] + bytes([blob[k] ^ op[2]]) + blob[k + 1 :]
        else:
            blob = blob + bytes([op[2]]) * (1 + k % 17)
        p.write_bytes(blob)
    return paths


# ---- the fuzz properties -----------------------------------------------------------------------


@settings(max_examples=examples(1000), **FUZZ_SETTINGS)
@given(
    feed=mutated_feed(),
    on_gap=st.sampled_from(["error", "resync"]),
    duration_s=st.sampled_from([None, None, None, 0.0, 0.1, 0.5]),
)
def test_fuzz_mutated_feed(tmp_path, feed, on_gap, duration_s):
    paths = write_mutated(tmp_path, *feed)
    out = convert_all(paths, on_gap=on_gap, duration_s=duration_s)
    event(outcome(out))
    if isinstance(out, FeedError):
        assert out.path in {str(p) for p in paths} and (out.line is None or out.line >= 1), out
    else:  # every sequence has events (at least its snapshot), from the files given
        assert out and all(len(events) for events, _ in out)
        assert {src["name"] for _, meta in out for src in meta["sources"]} <= {p.name for p in paths}
    for p in paths:
        p.unlink()


@settings(max_examples=examples(600), **FUZZ_SETTINGS)
@given(
    op=st.tuples(st.sampled_from(["replace_field", "delete_field"]), _LINE, _IDX, JSON_VALUES),
    extra=st.lists(
        st.tuples(st.just("perturb_field"), _LINE, _IDX, _PERTURB)
        | st.tuples(st.sampled_from(["delete", "duplicate"]), _LINE)
        | st.tuples(st.just("swap"), _LINE, _LINE),
        max_size=4,
    ),
    ignore=st.booleans(),
)
@example(op=("replace_field", 0, 0, None), extra=[], ignore=False)
def test_fuzz_field_values(tmp_path, op, extra, ignore):
    """Field-level mutations only (no byte damage), mostly type-preserving, so that many examples
    get past the line parser into sequencing, the tick/lot grid and the C++ book."""
    lines = list(base_lines())
    for o in [op, *extra]:
        lines = apply_line_op(lines, o)
    path = write_feed(tmp_path, join(lines))
    out = convert_all([path], on_gap="resync", ignore_streams=("kline_1m",) if ignore else ())
    event(outcome(out))
    assert named_or_converted(out, path), out
    path.unlink()


@settings(max_examples=examples(600), **FUZZ_SETTINGS)
@given(
    ops=st.lists(
        st.tuples(st.just("perturb_field"), _LINE, _IDX, _PERTURB)
        | st.tuples(st.sampled_from(["delete", "duplicate"]), _LINE)
        | st.tuples(st.sampled_from(["swap", "move"]), _LINE, _LINE),
        min_size=1,
        max_size=5,
    ),
    on_gap=st.sampled_from(["error", "resync"]),
)
def test_fuzz_plausible_values(tmp_path, ops, on_gap):
    """Same-type values near the real ones and reordered lines: most examples convert, so this
    reaches update-id sequencing (gaps, stale diffs, resync), the tick/lot grid, crossed-book
    detection and the C++ replay."""
    lines = list(base_lines())
    for o in ops:
        lines = apply_line_op(lines, o)
    path = write_feed(tmp_path, join(lines))
    out = convert_all([path], on_gap=on_gap)
    event(outcome(out))
    assert named_or_converted(out, path), out
    path.unlink()


@settings(max_examples=examples(60), **FUZZ_SETTINGS)
@given(cut=st.integers(min_value=0, max_value=10**9), flip=st.integers(min_value=0, max_value=255))
def test_fuzz_truncated_gzip(tmp_path, cut, flip):
    """A real-size (64 kB snapshot) gzip cut or corrupted at a random offset."""
    blob = gzip.compress(join(real_lines()), mtime=0)
    k = cut % len(blob)
    data = blob[:k] if flip == 0 else blob[:k] + bytes([blob[k] ^ flip]) + blob[k + 1 :]
    path = tmp_path / f"cut_{next(_counter)}.gz"
    path.write_bytes(data)
    out = convert_all([path])
    event(outcome(out))
    if flip == 0 and k < len(blob) - 8:
        # a cut before the gzip trailer must be reported, never silently accepted
        assert isinstance(out, FeedError), f"gzip cut at {k} of {len(blob)} bytes was accepted"
    path.unlink()


# ---- regressions found by the fuzzers ----------------------------------------------------------


def _with_line(tmp_path, index: int, transform) -> Path:
    lines = list(base_lines())
    ts, _, body = lines[index].partition(b" ")
    new_ts, msg = transform(ts, orjson.loads(body))
    lines[index] = new_ts + b" " + _dumps(msg)
    return write_feed(tmp_path, join(lines))


def _first(kind: str) -> int:
    for i, raw in enumerate(base_lines()):
        if kind.encode() in raw.partition(b" ")[2][:64]:
            return i
    raise AssertionError(kind)


def _snapshot_index() -> int:
    return next(i for i, raw in enumerate(base_lines()) if b'"lastUpdateId"' in raw[:64])


@pytest.mark.parametrize(
    "what,index,transform",
    [
        # a 19-digit local timestamp past 2**63 - 1 ns
        ("local_ts", 0, lambda ts, m: (b"9" * 19, m)),
        ("local_ts_later_line", 2, lambda ts, m: (b"9" * 19, m)),
        # an exchange time in ms whose ns value does not fit in int64
        ("depth_E", 0, lambda ts, m: (ts, {**m, "data": {**m["data"], "E": 2**63 // 1000}})),
        ("trade_T", None, lambda ts, m: (ts, {**m, "data": {**m["data"], "T": 2**62}})),
        # a price far above the others on a tiny tick: ticks do not fit in int64
        ("trade_price", None, lambda ts, m: (ts, {**m, "data": {**m["data"], "p": "9999999999.000000000001"}})),
        ("snapshot_qty", -1, lambda ts, m: (ts, {**m, "bids": [["61837.63", "9" * 20]] + m["bids"][1:]})),
    ],
)
def test_out_of_range_values_are_feed_errors(tmp_path, what, index, transform):
    if index is None:
        index = _first("@trade")
    elif index == -1:
        index = _snapshot_index()
    path = _with_line(tmp_path, index, transform)
    out = convert_all([path])
    assert isinstance(out, FeedError), f"{what}: accepted"
    assert out.line == index + 1, str(out)


@pytest.mark.parametrize("level", ["12", {"61837.63": 1, "3.0": 2}, ["61837.63"], ["61837.63", "1", "2"], [61837.63, 1.0]])
def test_level_must_be_a_pair_of_decimal_strings(tmp_path, level):
    """A level given as a 2-character string ("12") or a 2-key object used to unpack into a price
    and a size and be accepted silently."""
    index = _snapshot_index()
    path = _with_line(tmp_path, index, lambda ts, m: (ts, {**m, "bids": [level] + m["bids"][1:]}))
    out = convert_all([path])
    assert isinstance(out, FeedError) and out.line == index + 1, out
    assert "bids" in out.reason
