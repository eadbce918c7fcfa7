"""``trader-sim serve``: run the local Binance-compatible exchange from the command line."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from trader.options import SEED
from trader.sim import spec


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _in_git_tree(path: Path) -> Path | None:
    for parent in path.resolve().parents:
        if (parent / ".git").exists():
            return parent
    return None


def _rate_limit(value: str | None) -> tuple[int, float]:
    if not value:
        return 0, 10.0
    n, _, window = value.partition("/")
    try:
        return int(n), float(window or 10)
    except ValueError:
        raise click.BadParameter(f"expected N or N/SECONDS, got {value!r}", param_hint="--rate-limit") from None


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Dataset folder (default: the bundled sample).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it local).")
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0 = any free port).")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Replay speed: 1 = as recorded, 10 = ten times faster, 0 = frozen book.")
@click.option("--loop/--no-loop", default=False, show_default=True,
              help="Start the data again when it ends (ids keep increasing; clients resync).")
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help='JSON file {"API_KEY": {"secret": ..., "balances": {"USDT": "100000", "BTC": "1"}}}; '
                   "keep it outside the repository. Without it only public endpoints work.")
@click.option("--taker-fee-bps", type=float, default=spec.defaults()["taker_fee_bps"], show_default=True,
              help="Fee on orders that take liquidity, bps of notional (the default is trader train's).")
@click.option("--maker-fee-bps", type=float, default=spec.defaults()["maker_fee_bps"], show_default=True,
              help="Fee on resting orders that fill, bps of notional (the default is trader train's).")
@click.option("--min-notional", default="5", show_default=True, help="NOTIONAL filter, in quote.")
@click.option("--latency-ms", type=float, default=0.0, show_default=True,
              help="Round-trip latency added to REST responses; half of it to websocket messages.")
@click.option("--latency-jitter-ms", type=float, default=0.0, show_default=True,
              help="Random extra latency of REST responses, uniform in 0..this, on top of --latency-ms.")
@click.option("--rate-limit", default=None, metavar="N[/SECONDS]",
              help="Answer 429 (Retry-After, code -1003) past N requests per window (default 10 s).")
@click.option("--error-rate", type=float, default=0.0, show_default=True,
              help="Probability of a 5xx instead of processing a request.")
@click.option("--error-status", type=int, default=503, show_default=True,
              help="HTTP status of the errors that --error-rate injects.")
@click.option("--drop-after-accept", type=float, default=0.0, show_default=True,
              help="Probability of closing the connection after an order was placed or canceled.")
@click.option("--ws-disconnect-every", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="Close each websocket this many seconds after it connected.")
@click.option("--sequence-gap-every", type=int, default=0, show_default=True, metavar="N",
              help="Leave out every N-th message of the depth diff streams.")
@click.option("--fault-paths", default=None, metavar="LIST",
              help="Comma-separated REST endpoints the REST faults apply to (e.g. order,depth); default all.")
@click.option("--seed", type=int, default=SEED, show_default=True, help="Seed of the fault injection.")
@click.option("--duration", type=float, default=None, metavar="SECONDS", help="Stop after SECONDS (wall).")
@click.option("-v", "--verbose", is_flag=True, help="Log faults and connections.")
def serve(data_dir, host, port, speed, loop, keys_file, taker_fee_bps, maker_fee_bps, min_notional, latency_ms,
          latency_jitter_ms, rate_limit, error_rate, error_status, drop_after_accept, ws_disconnect_every,
          sequence_gap_every, fault_paths, seed, duration, verbose):
    """Serve a local exchange that speaks Binance's spot API, replaying a recorded dataset.

    REST under /api/v3 (and what ccxt's load_markets asks under /sapi, /fapi, /dapi), websocket
    streams under /ws and /stream. Orders are matched against the replayed book; balances are kept
    per API key. Point ccxt at it with trader.venue.ccxt_urls(URL, WS_URL).
    """
    from trader.venue import Faults, LocalExchange
    from trader.venue.auth import insecure_mode, load_keys

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    keys = {}
    if keys_file:
        try:
            keys = load_keys(keys_file)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        if insecure_mode(keys_file):
            click.echo(f"warning: {keys_file} is readable by group or others (chmod 600 it)", err=True)
        repo = _in_git_tree(Path(keys_file))
        if repo is not None:
            click.echo(f"warning: {keys_file} is inside the git work tree {repo}: keep secrets outside "
                       "repositories", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding {host}: the local exchange is meant for this machine only", err=True)
    n, window = _rate_limit(rate_limit)
    faults = Faults(latency_ms=latency_ms, latency_jitter_ms=latency_jitter_ms, rate_limit=n, rate_window_s=window,
                    error_rate=error_rate, error_status=error_status, drop_after_accept=drop_after_accept,
                    ws_disconnect_every=ws_disconnect_every, sequence_gap_every=sequence_gap_every,
                    paths=frozenset(p.strip() for p in fault_paths.split(",") if p.strip()) if fault_paths else None,
                    seed=seed)
    try:
        ex = LocalExchange(data_dir, keys=keys, speed=speed, host=host, port=port, loop=loop, faults=faults,
                           taker_bps=taker_fee_bps, maker_bps=maker_fee_bps, min_notional=min_notional)
        ex.start()
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    r = ex.replay
    click.echo(f"local exchange: {r.symbol} from {ex.dataset_path}")
    click.echo(f"  data {_utc(r.start_ns)} .. {_utc(r.end_ns)} UTC, replay x{speed:g}{' (looping)' if loop else ''}")
    click.echo(f"  REST {ex.url}/api/v3   websocket {ex.ws_url}")
    for key in keys:
        bal = ", ".join(f"{a} {v}" for a, v in keys[key].get("balances", {}).items())
        click.echo(f"  account {key[:4]}...{key[-2:] if len(key) > 8 else ''}: {bal or 'no balances'}")
    defaults = Faults()
    active = {k: v for k, v in vars(faults).items() if k != "seed" and v != getattr(defaults, k)}
    if "paths" in active:
        active["paths"] = ",".join(sorted(active["paths"]))
    if active:
        click.echo(f"  faults: {active} (seed {seed})")
    click.echo("  ccxt: ccxt.binance({'apiKey': KEY, 'secret': SECRET, 'urls': {'api': "
               f"trader.venue.ccxt_urls({ex.url!r}, 'ws://{ex.host}:{ex.port}')}}}})")
    click.echo("Ctrl-C to stop.")
    sys.stdout.flush()
    def _terminate(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # stop cleanly when run as a subprocess
    t0 = time.monotonic()
    last = t0
    try:
        while duration is None or time.monotonic() - t0 < duration:
            time.sleep(0.2 if duration is None else min(0.2, max(0.0, duration - (time.monotonic() - t0))))
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                s = ex.stats
                click.echo(f"  replay {_utc(ex.clock.now())}  update id {ex.last_update_id}  requests {s.requests}"
                           f"  ws clients {len(ex.hub.conns)}" + ("  (data ended)" if ex.finished else ""))
    except KeyboardInterrupt:
        pass
    finally:
        ex.stop()
    s = ex.stats
    click.echo(f"stopped: {s.requests} requests; faults: {s.rate_limited} x 429, {s.errors} x 5xx, {s.dropped} dropped, "
               f"{s.ws_disconnects} ws disconnects, {s.sequence_gaps} sequence gaps")
