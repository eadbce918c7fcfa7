"""The market-data commands: ``convert`` (raw feeds and snapshot tables to event datasets), ``info`` (span,
events, gaps, spread and depth of a dataset) and ``verify`` (the rebuilt book against every bookTicker).
One click group, ``data``, used as ``trader data ...``; ``trader-sim`` adds the same commands."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from trader.data.errors import FeedError

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

_BINANCE_LINE = re.compile(rb"^\d{13,19} \{")


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(2)


def sniff_binance(path: str | Path) -> bool:
    from trader.data.rawfile import iter_lines

    for _, raw in iter_lines(path):
        if raw.strip():
            return bool(_BINANCE_LINE.match(raw))
    return False


def _ts(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Market-data tools of trader: convert raw feeds, inspect and verify datasets."""


@data.command()
@click.argument("raw", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--format", "fmt", default="auto", show_default=True,
              help="binance (raw websocket feed) or a snapshot table: jsonl, csv, bitfinex, coinbase, bitstamp, lobster.")
@click.option("--tick-size", default=None, help="Price tick, e.g. 0.01 (default: gcd of all prices).")
@click.option("--lot-size", default=None, help="Size lot, e.g. 0.00001 (default: gcd of all sizes).")
@click.option("--on-gap", type=click.Choice(["error", "resync"]), default="error", show_default=True,
              help="On an update-id gap: stop with an error, or clear the book and resync from the next snapshot.")
@click.option("--ignore-stream", multiple=True, help="Stream kind to skip and count (e.g. aggTrade).")
@click.option("--duration", type=float, default=None, help="Keep only the first SECONDS of each sequence.")
@click.option("--symbol", default=None, help="Snapshot tables: instrument symbol.")
@click.option("--exchange", default=None, help="Snapshot tables: exchange name.")
@click.option("--csv-ts-column", default=None, help="csv: timestamp column.")
@click.option("--csv-ts-unit", default="auto", show_default=True, help="csv/jsonl: s, ms, us, ns or auto.")
@click.option("--csv-bid-price", default=None, help="csv: bid price column template, e.g. bid_price_{i}.")
@click.option("--csv-bid-size", default=None, help="csv: bid size column template.")
@click.option("--csv-ask-price", default=None, help="csv: ask price column template.")
@click.option("--csv-ask-size", default=None, help="csv: ask size column template.")
@click.option("--csv-levels", type=int, default=None, help="csv: number of levels (default: detected).")
def convert(raw, output, fmt, tick_size, lot_size, on_gap, ignore_stream, duration, symbol, exchange,
            csv_ts_column, csv_ts_unit, csv_bid_price, csv_bid_size, csv_ask_price, csv_ask_size, csv_levels):
    """Convert RAW files to an event dataset (events.npy + meta.json) in OUTPUT.

    Binance raw feeds are grouped by instrument into sequences (files joined in time order; a file
    with a REST snapshot starts a new sequence). One sequence is written to OUTPUT itself; several
    go to OUTPUT/<market>_<symbol>_<start time>/.
    """
    from trader.data.dataset import write_dataset

    t0 = time.perf_counter()
    try:
        if fmt == "auto":
            fmt = "binance" if all(sniff_binance(p) for p in raw) else _sniff_snapshot_format(raw)
        if fmt == "binance":
            from trader.data.binance import convert_sequence, group_sequences, sequence_name

            seqs = group_sequences(raw)
            outputs = []
            for files in seqs:
                events, meta = convert_sequence(files, tick_size=tick_size, lot_size=lot_size, on_gap=on_gap,
                                                ignore_streams=ignore_stream, duration_s=duration)
                folder = Path(output) if len(seqs) == 1 else Path(output) / sequence_name(files)
                outputs.append((folder, events, meta))
        else:
            from trader.data.snapshots import convert_snapshot_files

            events, meta = convert_snapshot_files(
                raw, fmt, symbol=symbol, exchange=exchange, tick_size=tick_size, lot_size=lot_size,
                csv_ts_column=csv_ts_column, csv_ts_unit=csv_ts_unit, csv_bid_price=csv_bid_price,
                csv_bid_size=csv_bid_size, csv_ask_price=csv_ask_price, csv_ask_size=csv_ask_size,
                csv_levels=csv_levels)
            outputs = [(Path(output), events, meta)]
        for folder, events, meta in outputs:
            write_dataset(folder, events, meta)
    except (FeedError, ValueError) as exc:
        _fail(exc)
    elapsed = time.perf_counter() - t0
    for folder, events, meta in outputs:
        rep = meta["report"]
        lines = ", ".join(f"{k} {v:,}" for k, v in sorted(rep.get("lines", {}).items()))
        console.print(f"[bold]{meta['exchange']} {meta['market']} {meta['symbol']}[/]: {len(events):,} events "
                      f"(tick {meta['tick_size']}, lot {meta['lot_size']}) from {len(meta['sources'])} file(s)")
        console.print(f"  lines: {lines}")
        extra = {k: v for k, v in rep.items() if k not in ("lines", "gaps", "crossed") and v}
        if extra:
            console.print(f"  report: {json.dumps(extra)}")
        if rep.get("gaps"):
            console.print(f"  [yellow]{len(rep['gaps'])} update-id gap(s), resynced[/]")
        if rep.get("crossed"):
            console.print(f"  [yellow]{len(rep['crossed'])} crossed book(s) (see meta.json report)[/]")
        console.print(f"  wrote {folder}/events.npy and meta.json")
    console.print(f"done in {elapsed:.1f} s")


def _sniff_snapshot_format(paths) -> str:
    from trader.data.snapshots import sniff_format

    found = {sniff_format(p) for p in paths}
    if len(found) != 1 or None in found:
        raise FeedError(paths[0], None, "cannot tell the format: pass --format (binance, jsonl, csv, bitfinex, "
                        "coinbase, bitstamp or lobster)")
    return found.pop()


@data.command()
@click.argument("data", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--depth", default=10, show_default=True, help="Levels a side for the depth statistics.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(data, depth, as_json):
    """Span, events by kind, sampling gaps, spread and depth of a dataset (default: the bundled sample)."""
    from trader.data.dataset import load_dataset
    from trader.data.info import dataset_info

    try:
        ds = load_dataset(data)
        result = dataset_info(ds, depth=depth)
    except (FeedError, ValueError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    t = Table(title=f"{result['exchange']} {result['market']} {result['symbol']}  ({result['path']})",
              show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    span = result["exchange_span_ns"] or [0, 0]
    t.add_row("tick / lot", f"{result['tick_size']} / {result['lot_size']}")
    t.add_row("exchange time", f"{_ts(span[0])} -> {_ts(span[1])} UTC ({result['duration_s']:.1f} s)")
    t.add_row("events", f"{result['events']:,}")
    t.add_row("by kind", ", ".join(f"{k} {v:,}" for k, v in result["events_by_kind"].items()))
    t.add_row("book messages", f"{result['book_messages']:,}")
    if "book_update_gap_ms" in result:
        g = result["book_update_gap_ms"]
        t.add_row("book update gaps (ms)", f"p50 {g['p50']:.0f}  p99 {g['p99']:.0f}  max {g['max']:.0f}  "
                  f"(>1 s: {result['book_update_gaps_over_1s']})")
    if "spread_ticks" in result:
        s, b = result["spread_ticks"], result["spread_bps"]
        t.add_row("spread (ticks)", f"p50 {s['p50']:.1f}  p90 {s['p90']:.1f}  max {s['max']:.0f}")
        t.add_row("spread (bps)", f"p50 {b['p50']:.3f}  p90 {b['p90']:.3f}  max {b['max']:.2f}")
        m = result["mid_price"]
        t.add_row("mid price", f"{m['first']:.6g} -> {m['last']:.6g}  (min {m['min']:.6g}, max {m['max']:.6g})")
        for side in ("bid", "ask"):
            d = result[f"{side}_size_top{depth}"]
            t.add_row(f"{side} size top {depth}", f"p50 {d['p50']:.6g}  p90 {d['p90']:.6g}")
        tr = result["traded_base"]
        t.add_row("traded (base)", f"bought {tr['bought']:.6g}, sold {tr['sold']:.6g}")
    console.print(t)


@data.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(inputs, as_json):
    """Rebuild the book and compare it with every bookTicker at an equal update id.

    INPUTS are raw Binance feed files (grouped into sequences) or dataset folders; default: the
    bundled sample. Exits 1 on any mismatch, update-id gap or crossed book.
    """
    from trader.data.dataset import load_dataset
    from trader.data.verify import verify_dataset, verify_raw

    try:
        dirs = [p for p in inputs if Path(p).is_dir()]
        files = [p for p in inputs if not Path(p).is_dir()]
        results = [verify_dataset(load_dataset(d)) for d in dirs] if inputs else [verify_dataset(load_dataset())]
        if files:
            results += verify_raw(files)
    except (FeedError, ValueError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        t = Table(title="book vs bookTicker at equal update ids")
        for col in ("sequence", "events", "tickers", "compared", "matched", "mismatched", "gaps", "crossed"):
            t.add_column(col, justify="left" if col == "sequence" else "right")
        for r in results:
            style = None if r.ok else "red"
            t.add_row(r.name, f"{r.events:,}", f"{r.tickers:,}", f"{r.compared:,}", f"{r.matched:,}",
                      f"{r.mismatched:,}", f"{len(r.gaps)}", f"{r.crossed}", style=style)
        console.print(t)
        for r in results:
            for m in r.mismatches[:5]:
                console.print(f"[red]mismatch[/] {r.name} {m['file']}:{m['line']} u={m['update_id']} "
                              f"ticker={m['ticker']} book={m['book']}")
            for g in r.gaps[:5]:
                console.print(f"[red]gap[/] {r.name} {g['file']}:{g['line']} expected {g['expected']}, "
                              f"got U={g['U']} u={g['u']}")
            for c in r.crossed_examples[:5]:
                console.print(f"[red]crossed[/] {r.name} {c['file']}:{c['line']} u={c['update_id']} "
                              f"bid {c['bid']} >= ask {c['ask']} (ticks)")
    sys.exit(0 if all(r.ok for r in results) else 1)
