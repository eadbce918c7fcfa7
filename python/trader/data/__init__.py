"""Market data: the event record, raw-feed and snapshot converters, datasets on disk, and the convert,
info and verify commands (trader.data.cli)."""

from trader.data.dataset import Dataset, load_dataset, sample_path, write_dataset
from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind

__all__ = [
    "EVENT_DTYPE",
    "EventFlag",
    "EventKind",
    "Dataset",
    "FeedError",
    "load_dataset",
    "sample_path",
    "write_dataset",
]
