"""A dataset on disk: ``events.npy`` (array of the 64-byte event record) and ``meta.json``.

``meta.json`` holds the instrument (exchange, market, symbol, tick and lot size as decimal strings),
the source files with their sha256, and the conversion report (counts of every line kind, gaps,
resyncs). Writes are atomic: files go to a temporary name in the same folder, then are renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

import numpy as np

from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE

EVENTS_FILE = "events.npy"
META_FILE = "meta.json"
FORMAT = "trader.events/1"
_REQUIRED_META = ("format", "exchange", "market", "symbol", "tick_size", "lot_size")


@dataclass
class Dataset:
    path: Path
    events: np.ndarray
    meta: dict

    @property
    def symbol(self) -> str:
        return self.meta["symbol"]

    @property
    def tick_size(self) -> Decimal:
        return Decimal(self.meta["tick_size"])

    @property
    def lot_size(self) -> Decimal:
        return Decimal(self.meta["lot_size"])

    def sample_top(self, depth: int = 10, interval_ns: int = 0, clock: str = "exchange"):
        """(ts[T] ns, book[T, depth, 4] ticks/lots, trade_flow[T, 2] lots) from the C++ replay."""
        from trader import _core

        return _core.sample_top(self.events, depth, interval_ns, clock)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_dataset(directory: str | Path, events: np.ndarray, meta: dict) -> Path:
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events: expected dtype {EVENT_DTYPE}, got {events.dtype}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = dict(meta, format=FORMAT, num_events=int(len(events)))
    _atomic_write(directory / EVENTS_FILE, lambda fh: np.save(fh, np.ascontiguousarray(events)))
    # meta last: a folder with meta.json has complete events next to it.
    _atomic_write(directory / META_FILE, lambda fh: fh.write(json.dumps(meta, indent=2).encode() + b"\n"))
    return directory


def load_dataset(directory: str | Path | None = None, *, mmap: bool = True) -> Dataset:
    """Load a dataset folder; with no argument, the sample bundled with the package."""
    directory = Path(directory) if directory is not None else sample_path()
    meta_path = directory / META_FILE
    events_path = directory / EVENTS_FILE
    if not meta_path.is_file():
        raise FeedError(meta_path, None, "missing: not a dataset folder (expected meta.json and events.npy; "
                        "create one with 'trader-sim convert')")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise FeedError(meta_path, exc.lineno, f"malformed JSON ({exc.msg})") from None
    for key in _REQUIRED_META:
        if key not in meta:
            raise FeedError(meta_path, None, f"missing field {key!r}")
    if meta["format"] != FORMAT:
        raise FeedError(meta_path, None, f"field 'format': expected {FORMAT!r}, got {meta['format']!r}")
    try:
        events = np.load(events_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FeedError(events_path, None, f"cannot read event array ({exc})") from None
    if events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise FeedError(events_path, None, f"expected a 1-D array of dtype {EVENT_DTYPE}, got {events.dtype} {events.shape}")
    if "num_events" in meta and meta["num_events"] != len(events):
        raise FeedError(events_path, None, f"holds {len(events)} events, meta.json says {meta['num_events']}: partial write?")
    return Dataset(directory, events, meta)


def sample_path() -> Path:
    """Folder of the bundled sample (a slice of real Binance spot BTCUSDT, converted)."""
    return Path(str(resources.files("trader.data") / "sample"))
