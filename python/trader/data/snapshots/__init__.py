"""L2 snapshot tables (periodic full snapshots of the top N levels) to event arrays.

Each snapshot becomes one BOOK_CLEAR event (flags 0; END_OF_MESSAGE if the snapshot has no level)
followed by one BOOK_SNAPSHOT event per level, bids best first then asks best first; the last level
carries END_OF_MESSAGE. ``update_id`` (and ``prev_update_id``) is a running snapshot number from 1.
Trades, where a source has them, become TRADE events with ``update_id`` = the trade id.

Formats (see ../shared/data/README.md sections 4 to 7 for the real files):

- ``jsonl``: ``{"ts": ..., "bids": [[price, size], ...], "asks": [...]}`` per line;
- ``csv``: a wide table, one row per snapshot, columns named by templates such as ``bid_price_{i}``;
- ``bitfinex``, ``coinbase``, ``bitstamp``, ``lobster``: the layouts of those datasets.

Prices and sizes are parsed exactly (decimal text to integers; JSON numbers through their shortest
``repr``). Nothing is dropped silently: every line is counted by kind in the report, and levels left
out (zero size, LOBSTER dummy prices, empty CSV cells) are counted too.

One file per format (``jsonl``, ``csv_table`` for ``csv``, ``bitfinex``, ``coinbase``, ``bitstamp``,
``lobster``: its description, default exchange and symbol, and ``parse``), and the parts they share:
``values`` (numbers and times), ``collect`` (the report and the collector of snapshots), ``columns`` (CSV
headers and level templates), ``convert`` (format sniffing, the tick and lot, the event records).
"""

from trader.data.snapshots.collect import SnapshotReport
from trader.data.snapshots.convert import SNAPSHOT_FORMATS, convert_snapshot_files, sniff_format
from trader.data.snapshots.lobster import message_path as lobster_message_path

__all__ = ["SNAPSHOT_FORMATS", "SnapshotReport", "convert_snapshot_files", "lobster_message_path", "sniff_format"]
