"""CSV tables with a header (the csv and coinbase formats): decoded lines for csv.reader, the header line,
and per-level column indices from ``{i}`` templates, with errors that quote the header."""

from __future__ import annotations

from trader.data.errors import FeedError
from trader.data.rawfile import iter_lines
from trader.data.snapshots.collect import SnapshotReport


def text_lines(path):
    """Decoded lines for csv.reader (one string per physical line, so reader.line_num = line)."""
    for line, raw in iter_lines(path):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedError(path, line, f"not UTF-8 text ({exc})") from None
        yield text.lstrip("\ufeff") if line == 1 else text


def read_header(path, reader, rep: SnapshotReport) -> tuple[list, int]:
    for row in reader:
        if not row or not any(c.strip() for c in row):
            rep.count("blank")
            continue
        rep.count("header")
        return [c.strip() for c in row], reader.line_num
    raise FeedError(path, None, "empty file: expected a CSV header line")


def missing_column(path, line, header, name, what) -> FeedError:
    shown = ",".join(header)
    if len(shown) > 300:
        shown = shown[:300] + "..."
    return FeedError(path, line, f"missing column {name!r} ({what}); header line {line} is: {shown}")


def level_columns(path, hline, header, templates, levels, what) -> list:
    """Column indices [(i0, i1, ...)] per level from `{i}` templates, levels from 0 or from 1."""
    index = {name: k for k, name in enumerate(header)}
    first = templates[0]
    if first.format(i=0) in index:
        start = 0
    elif first.format(i=1) in index:
        start = 1
    else:
        raise missing_column(path, hline, header, first.format(i=0), f"{what}, from template {first!r} with i = 0 or 1")
    out = []
    i = start
    while levels is None or i < start + levels:
        names = [t.format(i=i) for t in templates]
        present = [nm in index for nm in names]
        if levels is None and not any(present):
            break
        for nm, ok, t in zip(names, present, templates):
            if not ok:
                raise missing_column(path, hline, header, nm, f"{what}, level {i} of template {t!r}")
        out.append(tuple(index[nm] for nm in names))
        i += 1
    return out
