#!/usr/bin/env python3
"""Coverage-guided fuzzing of the Binance raw-feed converter with atheris (libFuzzer for Python).

The property is the one of tests/test_fuzz_feed.py: converting a raw feed file with the C++ parser
either succeeds, and then the C++ core replays and ticker-checks the events without an exception,
or it raises FeedError (a ValueError) whose message starts with the file's path; and the Python
reference parser (trader.data.binance_reference) gives the same events and meta, or a FeedError
for the same file (and line, unless the compressed data is damaged). Any other exception, a
FeedError naming something else, or a disagreement is reported by libFuzzer as a crash (input saved
as crash-<sha1>). Coverage guidance sees the Python side only (the reference and the wrapper
around the C++ parser); the C++ parser runs on every input.

Input layout (one libFuzzer input -> one or two raw feed files):
  byte 0   options: bit 0-1 codec (0 gzip the text, 1 plain, 2 the text is already a compressed
           stream, written as is, 3 gzip and split in two files at a line break chosen by byte 1);
           bit 2 on_gap='resync'; bit 3 ignore the 'kline_1m' stream
  byte 1   split point (codec 3)
  rest     the file contents
Seeds: the first lines of the real recording (../shared/data, README section 1), with the REST
snapshot cut to a few levels; also its gzip bytes (codec 2). They are written to a temporary
corpus folder unless corpus folders are given on the command line.

Usage (atheris is an optional dependency: pip install atheris):
  PYTHONPATH=python python3 benchmarks/fuzz_feed_atheris.py -atheris_runs=20000
  PYTHONPATH=python python3 benchmarks/fuzz_feed_atheris.py CORPUS_DIR -max_total_time=600
Any libFuzzer flag works (-max_len, -artifact_prefix=..., -jobs, ...).
"""

from __future__ import annotations

import atexit
import gzip
import importlib.util
import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("trader") is None:  # PYTHONPATH, when given, picks the package
    sys.path.insert(0, str(REPO / "python"))

try:
    import atheris
except ImportError:  # pragma: no cover - optional tool
    sys.exit("atheris is not installed: pip install atheris")

import orjson  # noqa: E402  (not instrumented: a C extension)

with atheris.instrument_imports(include=["trader"]):
    from trader.data import binance_reference
    from trader.data.binance import convert_sequence, group_sequences, sequence_name
    from trader.data.errors import FeedError

from trader import _core  # noqa: E402

RAW = REPO.parent / "shared" / "data" / "binance_hftbacktest_raw_feed" / "spot" / "btcusdt_20240808.gz"
SEED_LINES = 40
SNAPSHOT_LEVELS = 5

WORK = Path(tempfile.mkdtemp(prefix="fuzz_feed_"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
_names = itertools.count()


def seed_text() -> bytes:
    out = []
    with gzip.open(RAW, "rb") as fh:
        for raw in itertools.islice(fh, SEED_LINES):
            ts, _, body = raw.rstrip(b"\n").partition(b" ")
            msg = orjson.loads(body)
            if "lastUpdateId" in msg:
                msg["bids"] = msg["bids"][:SNAPSHOT_LEVELS]
                msg["asks"] = msg["asks"][:SNAPSHOT_LEVELS]
            out.append(ts + b" " + orjson.dumps(msg) + b"\n")
    return b"".join(out)


def write_seeds(folder: Path) -> None:
    text = seed_text()
    lines = text.splitlines(keepends=True)
    seeds = {
        "gzip": b"\x00\x00" + text,
        "plain_resync": b"\x05\x00" + text,
        "raw_gzip": b"\x02\x00" + gzip.compress(text, mtime=0),
        "split": b"\x03" + bytes([len(lines) // 2]) + text,
        "kline": b"\x08\x00" + text + lines[-1].split(b" ")[0] + b' {"stream":"btcusdt@kline_1m","data":{}}\n',
    }
    for name, data in seeds.items():
        (folder / f"seed_{name}").write_bytes(data)


def check_one(data: bytes) -> None:
    if len(data) < 2:
        return
    opts, split, body = data[0], data[1], data[2:]
    codec = opts & 3
    on_gap = "resync" if opts & 4 else "error"
    ignore = ("kline_1m",) if opts & 8 else ()
    n = next(_names)
    if codec == 3:
        breaks = [i + 1 for i, c in enumerate(body) if c == 0x0A]
        cut = breaks[split % len(breaks)] if breaks else len(body)
        parts = [gzip.compress(body[:cut], compresslevel=1, mtime=0), gzip.compress(body[cut:], compresslevel=1, mtime=0)]
    elif codec == 0:
        parts = [gzip.compress(body, compresslevel=1, mtime=0)]
    else:
        parts = [body]
    paths = []
    for k, blob in enumerate(parts):
        p = WORK / f"f{n}_{k}.gz"
        p.write_bytes(blob)
        paths.append(p)
    try:
        out = convert(paths, on_gap, ignore, None)
        ref = convert(paths, on_gap, ignore, binance_reference.parse_sequence)
        if isinstance(out, FeedError) != isinstance(ref, FeedError):
            raise AssertionError(f"C++ and reference disagree:\nC++: {out!s:.500}\nreference: {ref!s:.500}")
        if isinstance(out, FeedError):
            damaged = "compressed data" in out.reason or "compressed data" in ref.reason
            if out.path != ref.path or (not damaged and out.line != ref.line):
                raise AssertionError(f"errors at different places:\nC++: {out}\nreference: {ref}")
        else:
            for (ev, meta), (ev_r, meta_r) in zip(out, ref, strict=True):
                if not (ev.tobytes() == ev_r.tobytes() and meta == meta_r):
                    raise AssertionError("C++ and reference give different events or meta")
    finally:
        for p in paths:
            p.unlink()


def convert(paths, on_gap, ignore, parse):
    """The results, or the FeedError raised (checked to name one of the paths)."""
    kwargs = {} if parse is None else {"parse": parse}
    try:
        results = []
        for seq in group_sequences(paths):
            events, meta = convert_sequence(seq, on_gap=on_gap, ignore_streams=ignore, **kwargs)
            sequence_name(seq)
            check = _core.check_tickers(events)
            if check["replay"]["events"] != len(events):
                raise AssertionError(f"replay saw {check['replay']['events']} of {len(events)} events")
            results.append((events, meta))
        return results
    except FeedError as exc:
        msg = str(exc)
        if not any(msg.startswith(str(p)) for p in paths):
            raise AssertionError(f"FeedError does not start with the file path: {msg!r}") from exc
        return exc


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus folder given: seed one
        if not RAW.exists():
            sys.exit(f"real data not found at {RAW}; give a corpus folder instead")
        corpus = WORK / "corpus"
        corpus.mkdir()
        write_seeds(corpus)
        argv.append(str(corpus))
    if not any(a.startswith("-max_len") for a in argv):
        argv.append("-max_len=16384")
    if not any(a.startswith("-artifact_prefix") for a in argv):
        argv.append(f"-artifact_prefix={os.getcwd()}/")
    atheris.Setup(argv, lambda data: check_one(bytes(data)))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
