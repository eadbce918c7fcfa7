"""Rebuild the book from depth diffs and compare it with the exchange's own bookTicker.

Binance publishes the best bid/ask (bookTicker) with the update id of the book it reflects; after
applying the depth diff whose last update id equals it, our book's best bid and ask (price and size)
must be equal. The README of ../shared/data lists the expected counts of comparisons per sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trader.data.dataset import Dataset


@dataclass
class VerifyResult:
    name: str
    sources: list[str]
    events: int
    tickers: int
    compared: int
    matched: int
    mismatched: int
    gaps: list = field(default_factory=list)
    crossed: int = 0
    resyncs: int = 0
    lines: dict = field(default_factory=dict)
    mismatches: list = field(default_factory=list)  # first few, with file names
    crossed_examples: list = field(default_factory=list)
    skipped_streams: dict = field(default_factory=dict)  # streams without book data, counted
    ignored_streams: dict = field(default_factory=dict)
    duplicates: dict = field(default_factory=dict)  # lines / diffs / behind -> first places
    local_ts_backwards: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mismatched == 0 and not self.gaps and self.crossed == 0

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["ok"] = self.ok
        return d


def verify_events(name: str, events: np.ndarray, meta: dict) -> VerifyResult:
    from trader import _core

    check = _core.check_tickers(events)
    names = [s["name"] for s in meta.get("sources", [])]

    def place(ref: dict) -> dict:
        ref = dict(ref)
        ref["file"] = names[ref["file"]] if ref["file"] < len(names) else ref["file"]
        return ref

    report = meta.get("report", {})
    return VerifyResult(
        name=name,
        sources=names,
        events=int(len(events)),
        tickers=check["tickers"],
        compared=check["compared"],
        matched=check["matched"],
        mismatched=check["mismatched"],
        gaps=list(report.get("gaps", [])),
        crossed=check["replay"]["crossed"],
        resyncs=report.get("resyncs", 0),
        lines=dict(report.get("lines", {})),
        mismatches=[place(m) for m in check["mismatches"][:10]],
        crossed_examples=[place(c) for c in check["crossed"][:10]],
        skipped_streams=dict(report.get("skipped_streams", {})),
        ignored_streams=dict(report.get("ignored_streams", {})),
        duplicates=dict(report.get("duplicates", {})),
        local_ts_backwards=dict(report.get("local_ts_backwards", {})),
    )


def verify_raw(paths, progress=None, **convert_kwargs) -> list[VerifyResult]:
    """Convert raw Binance files in memory (gaps reported, not raised, unless on_gap='error') and
    check every sequence. `convert_kwargs` are those of binance.convert_sequence; `progress(files,
    file index, bytes read, total)` is called as files are read."""
    from trader.data.binance import convert_sequence, group_sequences, sequence_name

    convert_kwargs.setdefault("on_gap", "resync")
    results = []
    for files in group_sequences(paths):
        report = None if progress is None else (lambda fi, done, total, files=files: progress(files, fi, done, total))
        events, meta = convert_sequence(files, progress=report, **convert_kwargs)
        results.append(verify_events(sequence_name(files), events, meta))
    return results


def verify_dataset(ds: Dataset) -> VerifyResult:
    return verify_events(ds.path.name, ds.events, ds.meta)
