"""Binance's procedure for a local order book ("How to manage a local order book correctly", spot and
futures API docs), applied to a sequence's messages: diffs before the snapshot are buffered, those with
``u <= lastUpdateId`` dropped, the rest chained (spot ``U == previous u + 1``, futures ``pu == previous u``);
a gap is an error, or with ``on_gap="resync"`` a recorded book clear until the next snapshot."""

from __future__ import annotations

from trader.data.binance.files import FileInfo
from trader.data.binance.report import ConversionReport
from trader.data.errors import FeedError


def apply_order(messages: list, files: list[FileInfo], futures: bool, on_gap: str, report: ConversionReport) -> list:
    """The messages in the order the book applies them, with ("C", ...) clears at resyncs; stale diffs
    dropped and diffs left waiting for a snapshot counted in ``report``."""
    out = []
    buffer: list = []
    state = "await"  # await (no snapshot yet) | sync (snapshot applied, first diff pending) | live
    last_u = 0

    def gap(d, expected: str):
        path = files[d[1]].path
        entry = {
            "file": path.name,
            "line": d[2],
            "prev_u": last_u,
            "U": d[5],
            "u": d[6],
            "pu": d[7],
            "expected": expected,
        }
        report.gaps.append(entry)
        if on_gap == "error":
            raise FeedError(
                path, d[2],
                f"update-id gap: expected {expected} (previous u={last_u}), got U={d[5]} u={d[6]}"
                + (f" pu={d[7]}" if d[7] is not None else "")
                + "; pass on_gap='resync' / --on-gap resync to resync from the next snapshot",
            )

    def take(d):
        nonlocal state, last_u, buffer
        u, U, pu = d[6], d[5], d[7]
        if state == "sync":
            if u <= last_u:
                report.diffs_stale += 1
                return
            if not futures and U > last_u + 1:
                gap(d, f"U <= lastUpdateId + 1 = {last_u + 1}")
                return resync(d)
        elif futures:
            if pu != last_u:
                gap(d, f"pu == {last_u}")
                return resync(d)
        elif U != last_u + 1:
            gap(d, f"U == {last_u + 1}")
            return resync(d)
        out.append(d)
        report.diffs_applied += 1
        last_u = u
        state = "live"

    def resync(d):
        nonlocal state, buffer
        report.resyncs += 1
        out.append(("C", d[1], d[2], d[3], d[4], d[6]))
        state = "await"
        buffer = [d]

    for m in messages:
        tag = m[0]
        if tag == "D":
            if futures and m[7] is None:
                raise FeedError(files[m[1]].path, m[2], "futures depth message without field 'pu'")
            if state == "await":
                buffer.append(m)
            else:
                take(m)
        elif tag == "S":
            out.append(m)
            state = "sync"
            last_u = m[5]
            pending, buffer = buffer, []
            for d in pending:
                take(d)
        else:
            out.append(m)
    report.diffs_unapplied += len(buffer)
    return out
