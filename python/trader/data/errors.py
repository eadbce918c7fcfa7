"""The one error type of bad market data: it always names the file and, where known, the line."""

from __future__ import annotations


class FeedError(ValueError):
    """Bad input data. ``path`` and ``line`` (1-based) say where; the message says what was expected.

    ``hint``, when set, is ``(option, value, api_text)``: the keyword option of the converter that
    gets past this error (``("on_gap", "resync", "on_gap='resync'")``). The message names it as a
    keyword; a command-line tool names its own flag instead, and only if it has one (trader.sim.cli).
    """

    def __init__(self, path: str, line: int | None, message: str, hint: tuple | None = None):
        self.path = str(path)
        self.line = line
        self.reason = message
        self.hint = hint
        super().__init__(f"{self.where}: {message}" + (f" (pass {hint[2]} to go on)" if hint else ""))

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path


def option_hint(name: str, value: str) -> tuple:
    """A FeedError hint for a converter option: ignore_streams takes a list, the others one value."""
    api = f"{name}=[{value!r}]" if name == "ignore_streams" else f"{name}={value!r}"
    return (name, value, api)
