"""``trader record``: raw Binance feed files in the collector format that ``trader-sim convert`` reads.

Each line is ``<local_receive_ts_ns> <json>``: the REST depth snapshot (``{"lastUpdateId":...}``) or a
combined-stream message (``{"stream":"btcusdt@depth@100ms","data":{...}}``, ``@trade``,
``@bookTicker``) exactly as received (see ``trader.data.binance``). The messages come from
:class:`trader.live.stream.MarketStream`, which keeps every sequence consistent:

* a new file starts at every new sequence (first connection, reconnect, update-id gap), holding the
  diffs buffered before its snapshot, the snapshot, then what follows: ``trader-sim convert`` starts a
  new sequence at each file with a snapshot and finds no gap inside one;
* files also rotate by size (``rotate_mb`` of compressed output) or age (``rotate_s``) without a new
  snapshot: such a file continues the previous one (the converter joins them). Never before the
  sequence's snapshot is written: the stream hands over the diffs it buffered and the snapshot at
  once, and a rotation among them (a slow snapshot, a small ``rotate_mb``) put the snapshot in the
  next file, which the converter then took for a new sequence, leaving the first without a book;
* a file is written as ``<name>.gz.part``, flushed (gzip sync flush) every ``flush_s`` seconds, and
  renamed to ``<name>.gz`` when complete; on SIGINT/SIGTERM the current file is closed cleanly. After
  a crash, the next start recovers the readable lines of a leftover ``.part`` into a ``.gz``.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from trader.live.stream import MarketStream

log = logging.getLogger("trader.live.recorder")

PART = ".part"


@dataclass
class RecordStats:
    files: list = field(default_factory=list)  # completed files, in order
    lines: int = 0
    bytes_raw: int = 0
    recovered: list = field(default_factory=list)  # .part files recovered at start


class RawFileWriter:
    """Gzip files of raw lines in ``out_dir``, rotated by size and age, closed cleanly."""

    def __init__(self, out_dir: str | os.PathLike, prefix: str, *, rotate_mb: float | None = 256.0,
                 rotate_s: float | None = 3600.0, flush_s: float = 1.0, compresslevel: int = 6):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.rotate_bytes = None if not rotate_mb else int(rotate_mb * 1024 * 1024)
        self.rotate_s = rotate_s or None
        self.flush_s = flush_s
        self.compresslevel = compresslevel
        self.stats = RecordStats()
        self._raw = None
        self._gz: gzip.GzipFile | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._last_flush = 0.0
        self._count = 0
        self._snapshot_due = True  # the current sequence's snapshot is not written yet: no rotation before it

    # ---- files ---------------------------------------------------------------------------------
    def _open(self, ts_ns: int) -> None:
        stamp = datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).strftime("%Y%m%dT%H%M%S")
        while True:
            self._count += 1
            path = self.out_dir / f"{self.prefix}_{stamp}_{self._count:04d}.gz"
            if not path.exists() and not path.with_name(path.name + PART).exists():
                break
        self._path = path
        self._raw = open(path.with_name(path.name + PART), "wb")
        self._gz = gzip.GzipFile(filename=path.name, mode="wb", fileobj=self._raw, compresslevel=self.compresslevel)
        self._opened = self._last_flush = time.monotonic()
        log.info("recording to %s", path)

    def close_file(self) -> Path | None:
        """Close the current file (complete gzip stream, fsync, rename .part -> .gz)."""
        if self._gz is None:
            return None
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        part = self._path.with_name(self._path.name + PART)
        os.replace(part, self._path)
        done, self._gz, self._raw, self._path = self._path, None, None, None
        self.stats.files.append(done)
        return done

    def new_sequence(self, reason: str) -> None:
        """The stream restarts its book: the next line starts a new file (which will hold a snapshot)."""
        self.close_file()
        self._snapshot_due = True

    def write(self, ts_ns: int, text: str) -> None:
        if self._gz is None:
            self._open(ts_ns)
        data = f"{ts_ns} {text}\n".encode()
        self._gz.write(data)
        if self._snapshot_due and '"lastUpdateId"' in text[:64]:  # a REST snapshot, as the converter tells one
            self._snapshot_due = False
        self.stats.lines += 1
        self.stats.bytes_raw += len(data)
        now = time.monotonic()
        if now - self._last_flush >= self.flush_s:
            self._gz.flush(zlib.Z_SYNC_FLUSH)  # readable up to here if the process dies
            self._last_flush = now
        if not self._snapshot_due and (self.rotate_bytes is not None and self._raw.tell() >= self.rotate_bytes or
                                       self.rotate_s is not None and now - self._opened >= self.rotate_s):
            self.close_file()  # the next file continues this sequence (no new snapshot)

    # ---- crash recovery ------------------------------------------------------------------------
    def recover_parts(self) -> list[Path]:
        """Turn leftover ``*.gz.part`` files (from a killed recorder) into ``*.gz`` with every complete
        line that can still be read; a cut last line is dropped."""
        out = []
        for part in sorted(self.out_dir.glob(f"*.gz{PART}")):
            target = part.with_name(part.name[: -len(PART)])
            data = bytearray()
            raw = part.read_bytes()
            while raw:  # a truncated stream: decompressobj gives everything up to the cut
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                try:
                    data += d.decompress(raw)
                except zlib.error:
                    break
                raw = d.unused_data
            cut = data.rfind(b"\n")
            lines = bytes(data[: cut + 1]) if cut >= 0 else b""
            if lines:
                with gzip.open(target, "wb") as fh:
                    fh.write(lines)
                out.append(target)
                log.warning("recovered %d lines of %s into %s", lines.count(b"\n"), part.name, target.name)
            part.unlink()
        self.stats.recovered.extend(out)
        return out


async def record(client, symbol: str, out_dir: str | os.PathLike, *, duration: float | None = None,
                 rotate_mb: float | None = 256.0, rotate_s: float | None = 3600.0, depth_stream: str = "depth@100ms",
                 snapshot_limit: int = 1000, idle_timeout: float | None = 60.0, stream_ready=None,
                 flush_s: float = 1.0) -> tuple[RecordStats, MarketStream]:
    """Record ``symbol`` until ``duration`` seconds pass or the stream is stopped (``stream.stop()``,
    e.g. from a signal handler; ``stream_ready(stream)`` is called with the stream before it starts)."""
    market = client.market(symbol)
    writer = RawFileWriter(out_dir, market["id"].lower(), rotate_mb=rotate_mb, rotate_s=rotate_s, flush_s=flush_s)
    writer.recover_parts()
    stream = MarketStream(client, symbol, on_raw=writer.write, on_sequence=writer.new_sequence,
                          depth_stream=depth_stream, snapshot_limit=snapshot_limit, idle_timeout=idle_timeout)
    if stream_ready is not None:
        stream_ready(stream)
    try:
        await stream.run(duration)
    finally:
        writer.close_file()
    return writer.stats, stream


def run_record(exchange: str, symbol: str, out_dir, *, base_url: str | None = None, testnet: bool = False,
               duration: float | None = None,
               rotate_mb: float | None = 256.0, rotate_s: float | None = 3600.0, on_stream=None, **kw):
    """Synchronous entry point: builds the ccxt client, records, closes the client; SIGINT and SIGTERM
    stop the recording cleanly."""
    from trader.live.exchange_client import make_client
    from trader.live.signals import install_stop_signals, remove_stop_signals

    async def main():
        client = make_client(exchange, base_url=base_url, testnet=testnet)
        try:
            await client.load_markets()
            loop = asyncio.get_running_loop()
            installed = []

            def ready(stream):
                installed.extend(install_stop_signals(loop, lambda reason: stream.stop()))
                if on_stream is not None:
                    on_stream(stream)

            try:
                return await record(client, symbol, out_dir, duration=duration, rotate_mb=rotate_mb,
                                    rotate_s=rotate_s, stream_ready=ready, **kw)
            finally:
                remove_stop_signals(loop, tuple(installed))
        finally:
            await client.close()

    return asyncio.run(main())
