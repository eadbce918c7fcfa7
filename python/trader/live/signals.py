"""SIGINT and SIGTERM stop a live session (``trader live``) or a recording (``trader record``) cleanly,
through the asyncio loop: the handler only sets the stop flag, and the session or the stream then closes
its orders, files and clients itself.

Python delivers signals to the main thread alone, and Windows' event loops have no signal handlers, so
elsewhere (an application or a test running the session in a thread, Windows) nothing is installed and a
warning says so: the caller's own stop (a duration, ``stop()``) still ends it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("trader.live")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[str], None]) -> tuple[int, ...]:
    """On SIGINT or SIGTERM call ``stop("signal SIGINT")`` (or SIGTERM) in ``loop``; returns the signals
    installed, for :func:`remove_stop_signals` (none outside the main thread or on Windows)."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        where = "on Windows" if sys.platform == "win32" else f"in thread {threading.current_thread().name!r}"
        log.warning("running %s: SIGINT and SIGTERM will not stop this run cleanly", where)
        return ()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, f"signal {signal.Signals(sig).name}")
    return STOP_SIGNALS


def remove_stop_signals(loop: asyncio.AbstractEventLoop, installed: tuple[int, ...]) -> None:
    for sig in installed:
        loop.remove_signal_handler(sig)
