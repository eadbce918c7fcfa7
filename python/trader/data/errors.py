"""The one error type of bad market data: it always names the file and, where known, the line."""

from __future__ import annotations


class FeedError(ValueError):
    """Bad input data. ``path`` and ``line`` (1-based) say where; the message says what was expected."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")
