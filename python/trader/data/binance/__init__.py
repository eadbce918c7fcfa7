"""Binance raw websocket feeds (the hftbacktest collector format) to event arrays.

Each line is ``<local_receive_ts> <json>``; the JSON is a REST depth snapshot
(``{"lastUpdateId": ..., "bids": ..., "asks": ...}``) or a combined-stream message
(``{"stream": "<sym>@<kind>", "data": {...}}``) of kind depth diff, bookTicker or trade.
See ../shared/data/README.md section 1 for the format and its quirks.

Book reconstruction follows Binance's documented procedure ("How to manage a local order book
correctly", spot and futures API docs):

1. buffer the diffs that arrive before the snapshot;
2. drop buffered diffs with ``u <= lastUpdateId``;
3. apply the rest in order; spot chains ``U == previous u + 1``, futures chain ``pu == previous u``.
   The first spot diff must have ``U <= lastUpdateId + 1``; on futures, update ids skip values, so the
   first diff with ``u > lastUpdateId`` starts the chain (data README, USD-M ETH quirk).

Nothing is dropped silently: every line is counted by kind in the conversion report.

    files.py      lines, local timestamps and stream names; the instrument of a file; files grouped
                  into sequences (a new one at each file holding a REST snapshot)
    messages.py   lines to message tuples, prices and sizes in 1e-12 units (with their gcd)
    sequence.py   the procedure above: the order in which messages are applied, gaps and resyncs
    report.py     ConversionReport: every line counted by kind, gaps, resyncs, crossed books
    convert.py    convert_sequence: a sequence of files to (events, meta)
"""

from trader.data.binance.convert import convert_sequence
from trader.data.binance.files import FileInfo, Instrument, group_sequences, scan_file, sequence_name
from trader.data.binance.report import ConversionReport

__all__ = ["ConversionReport", "FileInfo", "Instrument", "convert_sequence", "group_sequences", "scan_file",
           "sequence_name"]
