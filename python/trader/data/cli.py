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
from rich.markup import escape
from rich.table import Table

from trader import errors
from trader.data.errors import FeedError
from trader.options import out_option

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

_BINANCE_LINE = re.compile(rb"^\d{13,19} \{")


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {escape(_error_text(exc))}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(2)


def _error_text(exc: Exception) -> str:
    """The error, its hint (an option that gets past it) named as this command's own flag, and left
    out if this command has no such flag."""
    hint = getattr(exc, "hint", None)
    if not hint:
        return str(exc)
    ctx = click.get_current_context(silent=True)
    params = {p.name: p for p in ctx.command.params} if ctx else {}
    option = params.get(hint[0])
    text = f"{exc.where}: {exc.reason}"
    if isinstance(option, click.Option):
        text += f" (pass {option.opts[0]} {hint[1]} to go on)"
    return text


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


@click.group(cls=errors.Group, context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Market-data tools of trader: convert raw feeds, inspect and verify datasets."""


# ---- input options shared by convert and verify -------------------------------------------------

_FORMATS = "binance (raw websocket feed), tardis (Tardis.dev CSV), binance-depth-csv (REST depth snapshots, one " \
           "level a row) or a snapshot table: jsonl, csv, bitfinex, coinbase, bitstamp, lobster"


def _input_options(on_gap_default: str):
    """The options that say how to read raw files: the same for convert and verify."""
    options = [
        click.option("--format", "fmt", default="auto", show_default=True, help=_FORMATS + "."),
        click.option("--tick-size", default=None, help="Price tick, e.g. 0.01 (default: gcd of all prices)."),
        click.option("--lot-size", default=None, help="Size lot, e.g. 0.00001 (default: gcd of all sizes)."),
        click.option("--on-gap", type=click.Choice(["error", "resync"]), default=on_gap_default, show_default=True,
                     help="On an update-id gap: stop with an error, or clear the book and resync from the next "
                          "snapshot."),
        click.option("--ignore-stream", "ignore_streams", multiple=True,
                     help="Binance stream kind to skip and count (streams without book data are skipped anyway)."),
        click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Keep only the first SECONDS of each sequence (by receive time)."),
        click.option("--symbol", default=None, help="Snapshot tables: instrument symbol."),
        click.option("--exchange", default=None, help="Snapshot tables: exchange name."),
        click.option("--market", type=click.Choice(["spot", "usdm", "coinm"]), default=None,
                     help="Snapshot tables and tardis: the market (default: spot; tardis: from the exchange)."),
        click.option("--csv-ts-column", default=None, help="csv: timestamp column."),
        click.option("--csv-ts-unit", default="auto", show_default=True, help="csv/jsonl: s, ms, us, ns or auto."),
        click.option("--csv-bid-price", default=None, help="csv: bid price column template, e.g. bid_price_{i}."),
        click.option("--csv-bid-size", default=None, help="csv: bid size column template."),
        click.option("--csv-ask-price", default=None, help="csv: ask price column template."),
        click.option("--csv-ask-size", default=None, help="csv: ask size column template."),
        click.option("--csv-levels", type=int, default=None, help="csv: number of levels (default: detected)."),
    ]

    def decorate(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


def _pair_lobster(paths: list[Path]) -> list[Path]:
    """A LOBSTER message file given with its orderbook file is read as part of the pair (its times),
    not as a file of its own."""
    from trader.data.snapshots import lobster_message_path

    paired = {lobster_message_path(p) for p in paths if "orderbook" in p.name}
    return [p for p in paths if p not in paired]


def _progress(files, fi: int, done: int, total: int) -> None:
    """One line a file on stderr, and one every 16 MB of compressed input inside big files."""
    name = files[fi].path.name
    if done == 0:
        err_console.print(f"  reading {name} ({fi + 1}/{len(files)}, {total / 1e6:,.1f} MB)", highlight=False)
    else:
        err_console.print(f"    {name}: {done / 1e6:,.0f} of {total / 1e6:,.0f} MB", highlight=False)


def _read_inputs(raw, opts: dict, progress: bool = True) -> list[tuple[str | None, object, dict]]:
    """Convert raw files (folders expand to their files) as `opts` say: a list of (sequence name or
    None for a single dataset, events, meta)."""
    from trader.data.rawfile import expand_inputs, first_line

    raw = _pair_lobster(expand_inputs(raw))
    for p in raw:
        if first_line(p) is None:
            raise FeedError(p, None, "the file is empty (no line with data)")
    fmt = opts["fmt"]
    if fmt == "auto":
        fmt = "binance" if all(sniff_binance(p) for p in raw) else _sniff_snapshot_format(raw)
    if fmt == "binance-depth-csv":
        from trader.data.binance_depth_csv import convert_depth_csv_files

        events, meta = convert_depth_csv_files(raw, tick_size=opts["tick_size"], lot_size=opts["lot_size"],
                                               market=opts["market"])
        return [(None, *_first_seconds(events, meta, opts["duration"]))]
    if fmt == "binance":
        from trader.data.binance import convert_sequence, group_sequences, sequence_name

        if opts["market"] is not None:
            raise click.UsageError("--market: the binance format reads the market from the data")
        seqs = group_sequences(raw)
        out = []
        for k, files in enumerate(seqs):
            if progress:
                err_console.print(f"sequence {k + 1}/{len(seqs)}: {sequence_name(files)}", highlight=False)
            report = (lambda fi, done, total, files=files: _progress(files, fi, done, total)) if progress else None
            events, meta = convert_sequence(files, tick_size=opts["tick_size"], lot_size=opts["lot_size"],
                                            on_gap=opts["on_gap"], ignore_streams=opts["ignore_streams"],
                                            duration_s=opts["duration"], progress=report)
            out.append((sequence_name(files) if len(seqs) > 1 else None, events, meta))
        return out
    if fmt == "tardis":
        from trader.data.tardis import convert_tardis_files

        events, meta = convert_tardis_files(raw, tick_size=opts["tick_size"], lot_size=opts["lot_size"],
                                            symbol=opts["symbol"], exchange=opts["exchange"], market=opts["market"])
        return [(None, *_first_seconds(events, meta, opts["duration"]))]
    from trader.data.snapshots import convert_snapshot_files

    events, meta = convert_snapshot_files(
        raw, fmt, symbol=opts["symbol"], exchange=opts["exchange"], tick_size=opts["tick_size"],
        lot_size=opts["lot_size"], market=opts["market"], csv_ts_column=opts["csv_ts_column"],
        csv_ts_unit=opts["csv_ts_unit"], csv_bid_price=opts["csv_bid_price"], csv_bid_size=opts["csv_bid_size"],
        csv_ask_price=opts["csv_ask_price"], csv_ask_size=opts["csv_ask_size"], csv_levels=opts["csv_levels"])
    return [(None, *_first_seconds(events, meta, opts["duration"]))]


def _first_seconds(events, meta: dict, seconds: float | None):
    """--duration for the formats converted whole (the binance parser stops reading at it): the events
    before the first one received more than `seconds` after the first event. A book snapshot's events
    share one receive time, so none is cut in two."""
    if seconds is None or not len(events):
        return events, meta
    import numpy as np

    later = np.flatnonzero(events["local_ts"] > int(events["local_ts"][0]) + int(seconds * 1e9))
    total = len(events)
    if len(later):
        events = events[:later[0]]
    report = dict(meta.get("report", {}))
    report["notes"] = [*report.get("notes", []), f"--duration {seconds:g}: the first {len(events):,} of {total:,} "
                       "events kept; the counts above are of the whole input"]
    return events, {**meta, "duration_s": seconds, "report": report}


@data.command()
@click.argument("raw", nargs=-1, required=True, type=click.Path(exists=True))
@_input_options(on_gap_default="error")
@out_option("Dataset folder to write.", required=True, old=("--output",))
def convert(raw, out, **opts):
    """Convert RAW files (or folders of them, e.g. one file a day) to event datasets.

    Binance raw feeds are grouped by instrument into sequences (files joined in time order; a file
    with a REST snapshot starts a new sequence). One sequence is written to OUT itself (events.npy
    + meta.json); several go to OUT/<market>_<symbol>_<start time>/, listed in OUT/index.json
    (a collection: `info` and the learners take it whole).
    """
    from trader.data.dataset import write_dataset, write_index

    t0 = time.perf_counter()
    try:
        outputs = _read_inputs(raw, opts)
        for name, events, meta in outputs:
            _replaceable(Path(out) / name if name else Path(out), meta)
        for name, events, meta in outputs:
            write_dataset(Path(out) / name if name else Path(out), events, meta)
        if len(outputs) > 1:
            write_index(out, [name for name, _, _ in outputs])
    except (FeedError, ValueError) as exc:
        _fail(exc)
    elapsed = time.perf_counter() - t0
    for name, events, meta in outputs:
        folder = Path(out) / name if name else Path(out)
        rep = meta["report"]
        lines = ", ".join(f"{k} {v:,}" for k, v in sorted(rep.get("lines", {}).items()))
        console.print(f"[bold]{meta['exchange']} {meta['market']} {meta['symbol']}[/]: {len(events):,} events "
                      f"(tick {meta['tick_size']}, lot {meta['lot_size']}) from {len(meta['sources'])} file(s)")
        console.print(f"  lines: {lines}")
        extra = {k: v for k, v in rep.items() if k not in ("lines", "gaps", "crossed") and _reported(v)}
        if extra:
            console.print(f"  report: {json.dumps(extra)}")
        if rep.get("gaps"):
            console.print(f"  [yellow]{len(rep['gaps'])} update-id gap(s), resynced[/]")
        if rep.get("crossed"):
            console.print(f"  [yellow]{len(rep['crossed'])} crossed book(s) (see meta.json report)[/]")
        console.print(f"  wrote {folder}/events.npy and meta.json")
    if len(outputs) > 1:
        console.print(f"wrote {Path(out) / 'index.json'} ({len(outputs)} datasets)")
    console.print(f"done in {elapsed:.1f} s")


def _replaceable(folder: Path, meta: dict) -> None:
    """A dataset folder may be written over only by the same instrument (issue 17: convert silently
    replaced a dataset of another symbol); its embeddings (trader embed) are of the old events, so
    they go."""
    old_meta = folder / "meta.json"
    if old_meta.is_file():
        old = json.loads(old_meta.read_text())
        key = ("exchange", "market", "symbol")
        if tuple(old.get(k) for k in key) != tuple(meta.get(k) for k in key):
            raise click.UsageError(f"-o/--out: {folder} holds a dataset of {' '.join(str(old.get(k)) for k in key)}, "
                                   f"not {' '.join(str(meta.get(k)) for k in key)}; write to another folder or "
                                   "remove it first")
    for stale in (folder / "embeddings.npy", folder / "embeddings.json"):
        stale.unlink(missing_ok=True)


def _reported(v) -> bool:
    """Worth printing: a non-zero count or a non-empty entry (dicts of empty lists are not)."""
    if isinstance(v, dict):
        return any(_reported(x) for x in v.values())
    return bool(v)


def _sniff_snapshot_format(paths) -> str:
    from trader.data.binance_depth_csv import sniff_depth_csv
    from trader.data.snapshots import sniff_format
    from trader.data.tardis import sniff_tardis

    found = {"tardis" if sniff_tardis(p) else "binance-depth-csv" if sniff_depth_csv(p) else sniff_format(p)
             for p in paths}
    if len(found) != 1 or None in found:
        raise FeedError(paths[0], None, f"cannot tell the format: pass --format ({_FORMATS})")
    return found.pop()


@data.command()
@click.argument("data", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--depth", default=10, show_default=True, help="Levels a side for the depth statistics.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(data, depth, as_json):
    """Span, events by kind, sampling gaps, spread and depth of a dataset or of each dataset of a
    collection (a folder with index.json; default: the bundled sample)."""
    from trader.data.dataset import INDEX_FILE, META_FILE, load_collection, load_dataset
    from trader.data.info import dataset_info

    try:
        collection = data is not None and (Path(data) / INDEX_FILE).is_file() and not (Path(data) / META_FILE).is_file()
        parts = load_collection(data) if collection else [load_dataset(data)]
        results = [dataset_info(ds, depth=depth) for ds in parts]
    except (FeedError, ValueError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(results if collection else results[0], indent=2))
        return
    if collection:
        t = Table(title=f"collection {data}: {len(results)} datasets")
        for col in ("dataset", "instrument", "exchange time (UTC)", "seconds", "events", "book messages"):
            t.add_column(col, justify="right" if col in ("seconds", "events", "book messages") else "left")
        for r in results:
            span = r["exchange_span_ns"] or [0, 0]
            t.add_row(Path(r["path"]).name, f"{r['exchange']} {r['market']} {r['symbol']}",
                      f"{_ts(span[0])} -> {_ts(span[1])}", f"{r['duration_s']:.1f}", f"{r['events']:,}",
                      f"{r['book_messages']:,}")
        console.print(t)
    for result in results:
        _info_table(result, depth)


def _info_table(result: dict, depth: int) -> None:
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
@_input_options(on_gap_default="resync")
def verify(inputs, as_json, **opts):
    """Rebuild the book and compare it with every bookTicker at an equal update id.

    INPUTS are raw feed files or folders of them (read with the same options as convert; Binance
    files are grouped into sequences), dataset folders or collections; default: the bundled sample.
    Exits 1 on any mismatch, update-id gap or crossed book. Progress goes to stderr.
    """
    from trader.data.dataset import INDEX_FILE, META_FILE, load_collection, load_dataset
    from trader.data.verify import verify_dataset, verify_events

    try:
        results, raw = [], []
        for p in map(Path, inputs):
            if (p / META_FILE).is_file():
                results.append(verify_dataset(load_dataset(p)))
            elif (p / INDEX_FILE).is_file():
                results += [verify_dataset(ds) for ds in load_collection(p)]
            else:
                raw.append(p)
        if not inputs:
            results.append(verify_dataset(load_dataset()))
        for name, events, meta in _read_inputs(raw, opts) if raw else []:
            results.append(verify_events(name or _dataset_name(meta), events, meta))
    except (FeedError, ValueError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        t = Table(title="book vs bookTicker at equal update ids")
        for col in ("sequence", "events", "tickers", "compared", "matched", "mismatched", "gaps", "crossed",
                    "skipped streams"):
            t.add_column(col, justify="left" if col in ("sequence", "skipped streams") else "right")
        for r in results:
            style = None if r.ok else "red"
            skipped = ", ".join(f"{k} {v:,}" for k, v in {**r.skipped_streams, **r.ignored_streams}.items()) or "-"
            t.add_row(r.name, f"{r.events:,}", f"{r.tickers:,}", f"{r.compared:,}", f"{r.matched:,}",
                      f"{r.mismatched:,}", f"{len(r.gaps)}", f"{r.crossed}", skipped, style=style)
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
            for kind, places in r.duplicates.items():
                for d in places[:5]:
                    console.print(f"[yellow]duplicate {kind}[/] {r.name} {d['file']}:{d['line']}")
            back = r.local_ts_backwards
            if back.get("count"):
                first = back["first"][0]
                console.print(f"[yellow]local clock stepped back[/] {r.name}: {back['count']:,} time(s), at most "
                              f"{back['max_step_ns'] / 1e9:.3f} s; first at {first['file']}:{first['line']}")
    sys.exit(0 if all(r.ok for r in results) else 1)


def _dataset_name(meta: dict) -> str:
    return f"{meta['exchange']}_{meta['market']}_{meta['symbol'].lower()}"


