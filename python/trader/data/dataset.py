"""A dataset on disk: ``events.npy`` (array of the 64-byte event record) and ``meta.json``; and a
collection of datasets: a folder with ``index.json`` and one dataset folder per continuous sequence.

``meta.json`` holds the instrument (exchange, market, symbol, tick and lot size as decimal strings),
the source files with their sha256, and the conversion report (counts of every line kind, gaps,
resyncs). ``index.json`` lists the collection's datasets in time order with their instrument, span
and event count. Writes are atomic: files go to a temporary name in the same folder, then are renamed.
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
INDEX_FILE = "index.json"
FORMAT = "trader.events/1"
COLLECTION_FORMAT = "trader.collection/1"
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
        """(ts[T] ns, book[T, depth, 4] ticks/lots, trade_flow[T, 2] lots) from the C++ replay. A
        collection is sampled part by part (rows never span the time between two sequences)."""
        from trader import _core

        parts = self.meta.get("collection")
        if not parts:
            return _core.sample_top(self.events, depth, interval_ns, clock)
        outs = [_core.sample_top(self.events[p["first_event"]: p["first_event"] + p["num_events"]], depth,
                                 interval_ns, clock) for p in parts]
        return tuple(np.concatenate(x) for x in zip(*outs))


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
    """Load a dataset folder; with no argument, the sample bundled with the package. A collection
    folder (index.json) loads as one dataset: its datasets' events one after the other (each starts
    with a BOOK_CLEAR and a snapshot, so the book restarts at every sequence), file indices renumbered
    and meta["collection"] naming the parts; all must share the instrument, tick and lot."""
    directory = Path(directory) if directory is not None else sample_path()
    if (directory / INDEX_FILE).is_file() and not (directory / META_FILE).is_file():
        return _concatenate(directory, load_collection(directory))
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


def write_index(directory: str | Path, names: list[str]) -> Path:
    """Write ``index.json`` of a collection whose datasets are the sub-folders `names`, in time order."""
    directory = Path(directory)
    entries = []
    for name in names:
        ds = load_dataset(directory / name)
        local = ds.events["local_ts"]
        entries.append({
            "name": name,
            **{k: ds.meta[k] for k in ("exchange", "market", "symbol", "tick_size", "lot_size")},
            "num_events": int(len(ds.events)),
            "local_span_ns": [int(local.min()), int(local.max())] if len(local) else None,
            "sources": [s["name"] for s in ds.meta.get("sources", [])],
        })
    index = {"format": COLLECTION_FORMAT, "datasets": entries}
    _atomic_write(directory / INDEX_FILE, lambda fh: fh.write(json.dumps(index, indent=2).encode() + b"\n"))
    return directory / INDEX_FILE


def load_collection(directory: str | Path, *, mmap: bool = True) -> list[Dataset]:
    """The datasets of a collection folder, in the order of its index.json."""
    directory = Path(directory)
    path = directory / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except OSError as exc:
        raise FeedError(path, None, f"cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise FeedError(path, exc.lineno, f"malformed JSON ({exc.msg})") from None
    if not isinstance(index, dict) or index.get("format") != COLLECTION_FORMAT:
        raise FeedError(path, None, f"field 'format': expected {COLLECTION_FORMAT!r}")
    entries = index.get("datasets")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "name" in e for e in entries):
        raise FeedError(path, None, "field 'datasets': expected a non-empty list of {\"name\": ...}")
    return [load_dataset(directory / e["name"], mmap=mmap) for e in entries]


def _concatenate(directory: Path, parts: list[Dataset]) -> Dataset:
    first = parts[0].meta
    keys = ("exchange", "market", "symbol", "tick_size", "lot_size")
    for ds in parts[1:]:
        for k in keys:
            if ds.meta[k] != first[k]:
                raise FeedError(ds.path / META_FILE, None,
                                f"{k} {ds.meta[k]!r} differs from {first[k]!r} of {parts[0].path.name}: the collection "
                                "cannot load as one dataset (convert with --tick-size and --lot-size to share the grid, "
                                "or load its datasets one by one)")
    sources, chunks, ranges = [], [], []
    start = 0
    for ds in parts:
        ev = np.array(ds.events)
        ev["file"] += len(sources)
        sources += ds.meta.get("sources", [])
        chunks.append(ev)
        ranges.append({"name": ds.path.name, "first_event": start, "num_events": int(len(ev))})
        start += len(ev)
    if len(sources) > 65535:
        raise FeedError(directory, None, "more than 65535 source files: load the datasets one by one")
    meta = {k: first[k] for k in ("format", *keys)}
    meta.update(sources=sources, collection=ranges, num_events=start)
    return Dataset(directory, np.concatenate(chunks), meta)


def sample_path() -> Path:
    """Folder of the bundled sample (a slice of real Binance spot BTCUSDT, converted)."""
    return Path(str(resources.files("trader.data") / "sample"))
