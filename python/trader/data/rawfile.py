"""Opening recorded text feeds (gzip, bzip2, xz or plain, one message per line) with clear errors,
and finding them: folders of daily files expand to their files."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path

from trader.data.errors import FeedError

_MAGIC = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}


def open_text(path: str | Path):
    """Open a possibly compressed file as bytes, choosing the codec by its magic bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise FeedError(path, None, f"cannot open: {exc.strerror}") from None
    for magic, opener in _MAGIC.items():
        if head.startswith(magic):
            return opener(path, "rb")
    return open(path, "rb")


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without the newline). A truncated or corrupt compressed
    file raises FeedError naming the last line read intact."""
    lineno = 0
    try:
        with open_text(path) as fh:
            for raw in fh:
                lineno += 1
                yield lineno, raw.rstrip(b"\r\n")
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise FeedError(
            path, lineno + 1, f"compressed data is truncated or corrupt after line {lineno} ({exc})"
        ) from None


def first_line(path: str | Path) -> bytes | None:
    """The first non-blank line of a file, or None if it has none (an empty file)."""
    for _, raw in iter_lines(path):
        if raw.strip():
            return raw
    return None


def expand_inputs(paths) -> list[Path]:
    """Input paths with each folder replaced by the files in it (sorted by name; hidden files and
    sub-folders left out): a folder of daily files converts like the files themselves."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            if not files:
                raise FeedError(p, None, "folder holds no file to read")
            out += files
        else:
            out.append(p)
    return out
