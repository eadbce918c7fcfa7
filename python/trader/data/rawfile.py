"""Opening recorded text feeds: gzip, bzip2, xz or plain, one message per line, with clear errors."""

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
