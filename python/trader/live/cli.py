"""``trader live`` and ``trader record``: thin click commands over ``trader.live.launch`` and
``trader.live.recorder``. Keys come from TRADER_API_KEY / TRADER_API_SECRET or ``--keys-file``; they
are never printed, and every log line goes through a redacting filter."""

from __future__ import annotations

import logging
import sys

import click

from trader import errors
from trader.options import deprecated_alias, out_option
from trader.sim import spec
from trader.sim.flags import LIVE_RISK_OPTIONS, env_options, flag_message, pop_env_values

_SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (rich's live status line redirects it while it runs)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _logging(verbose: bool, log_file: str | None, keys=None) -> None:
    from trader.live.keys import install_redaction

    handlers = [_StderrHandler()]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("ccxt", "asyncio", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_redaction(keys)


@click.command("live", context_settings=_SETTINGS)
@click.option("--exchange", default="binance", help="ccxt exchange id (binance spot).")
@click.option("--symbol", default="BTC/USDT", help="Market, ccxt style.")
@click.option("--checkpoint", multiple=True, default=["scripted:hold"],
              help="Policy: a trader train checkpoint (file, folder or run folder), or scripted:hold|buy|sell|"
                   "alternate|cycle for rehearsals; given several times, the committee of those checkpoints (each "
                   "step: what a strict majority of them backs), as is the folder of trader train --committee.")
@click.option("--paper/--real", "paper", default=True,
              help="Paper: fills against the live book with fees, nothing sent. Real: orders through ccxt.")
@click.option("--base-url", default=None, metavar="URL",
              help="A local exchange (trader-sim serve), e.g. http://127.0.0.1:8765; every endpoint goes there.")
@click.option("--testnet", is_flag=True, help="Binance's spot testnet (ccxt sandbox mode).")
@click.option("--keys-file", type=click.Path(dir_okay=False), default=None,
              help='JSON {"apiKey": ..., "secret": ...} outside the repository (default: TRADER_API_KEY and '
                   "TRADER_API_SECRET).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the SQLite ledgers (orders, fills, position, kill switch), one per venue, symbol and "
                   "paper/real [default: $TRADER_STATE_DIR, else $XDG_DATA_HOME/trader/live, i.e. "
                   "~/.local/share/trader/live].")
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="The SQLite ledger file itself [default: STATE_DIR/{venue}__{symbol}__{paper|real}.sqlite].")
@click.option("--max-position", type=float, default=None, help="|position| limit, base units [default: the policy's].")
@click.option("--max-notional", type=float, default=None, help="|position| x mid limit, quote units.")
@click.option("--max-order", type=float, default=None, help="Largest single order, base units.")
@click.option("--daily-loss-limit", type=float, default=None,
              help="Loss since the start of the UTC day (quote) that trips the kill switch.")
@click.option("--flatten-on-kill", is_flag=True, help="The kill switch also closes the position.")
@click.option("--flatten-on-exit", is_flag=True, help="Close the position when the session ends.")
@click.option("--clear-kill", is_flag=True, help="Clear an earlier kill switch record (after looking at it).")
@click.option("--rebaseline", is_flag=True,
              help="Accept the exchange's balances as the new baseline (after transfers made on purpose).")
@click.option("--duration", type=float, default=None, metavar="SECONDS", help="Stop after SECONDS.")
@click.option("--interval-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Step interval, ms [default: the policy's run's --interval-ms; 100 for scripted policies].")
@click.option("--depth", type=int, default=None, help="Book levels of the features [default: 10 or the encoder's].")
@click.option("--encoder", type=click.Path(exists=True, file_okay=False), default=None,
              help="trader train-encoder model folder: observations are its embeddings.")
@click.option("--trade-size", type=float, default=None, help="Override the policy's order size (base units).")
@click.option("--taker-fee-bps", "fee_bps", type=click.FloatRange(min=0), default=None,
              help="Paper broker: fee on its fills (market orders), bps of notional [default: the policy's, as in "
                   "trader backtest; trader train's default for scripted policies].")
@click.option("--max-slippage-bps", type=float, default=None,
              help="Send LIMIT IOC orders capped this far past the best price instead of market orders.")
@click.option("--stale-after", type=float, default=5.0, help="Seconds without a book update before no new orders.")
@click.option("--record", "record_dir", type=click.Path(file_okay=False), default=None,
              help="Also record the raw stream into this folder (trader record's format).")
@click.option("--recv-window-ms", type=int, default=5000, help="Binance recvWindow of signed requests.")
# ---- USD-M futures (trader.live.futures) ----
@click.option("--market", type=click.Choice(["spot", "usdm"]), default="spot",
              help="spot (ccxt binance) or usdm: USD-M perpetual futures through ccxt binanceusdm (--symbol BTC/USDT "
                   "means BTC/USDT:USDT).")
@click.option("--leverage", type=click.IntRange(1, 125), default=1,
              help="usdm: leverage set on the exchange at start (and checked there).")
@click.option("--margin-mode", type=click.Choice(["cross", "isolated"]), default="cross",
              help="usdm: margin mode set on the exchange at start (and checked there).")
@click.option("--liquidation-buffer-pct", type=click.FloatRange(min=0, min_open=True), default=10.0,
              help="usdm: when the mark price is within this many percent (of the mark) of the liquidation price, "
                   "no new order and the position is closed with a reduce-only market order.")
# ----
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, metavar="SECONDS",
              help="How long the start waits for the exchange (its markets), retries included, before it gives up "
                   "(exit status 1).")
@env_options(LIVE_RISK_OPTIONS, default_note="the run's")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None, help="Also write the log to this file.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level (orders, reconnects, reconciliation).")
@deprecated_alias("--fee-bps", "fee_bps", "--taker-fee-bps", type=click.FloatRange(min=0))
def live(exchange, symbol, checkpoint, paper, base_url, testnet, keys_file, state_dir, db, max_position, max_notional,
         max_order, daily_loss_limit, flatten_on_kill, flatten_on_exit, clear_kill, rebaseline, duration, interval_ms,
         depth, encoder, trade_size, fee_bps, max_slippage_bps, stale_after, record_dir, recv_window_ms, market,
         leverage, margin_mode, liquidation_buffer_pct, connect_timeout, log_file, verbose, **env_flags):
    """Trade a policy live: the websocket book, the training features, the policy every step, and a
    paper or a real broker with risk limits; state in SQLite, reconciled with the exchange at start."""
    from rich.console import Console

    from trader.live.keys import KeysError, load_keys
    from trader.live.launch import EXIT_ERROR, EXIT_OK, EXIT_REFUSED, ExchangeUnreachable, LiveOptions, default_db, run_live

    err = Console(stderr=True, soft_wrap=True)  # whole lines: paths and URLs unbroken
    try:
        keys = load_keys(keys_file, warn=lambda m: err.print(f"warning: {m}", highlight=False, markup=False))
    except KeysError as exc:  # missing or malformed keys: bad input, exit status 2 (README)
        raise click.UsageError(str(exc)) from None
    _logging(verbose, log_file, keys)
    risk = pop_env_values(env_flags)
    try:  # each flag's own values; --guard-sides is checked with the run's guard window once it is read (trader.live.policy)
        spec.check_config(**{k: v for k, v in risk.items() if k != "guard_sides"})
    except ValueError as exc:
        raise click.UsageError(flag_message(str(exc))) from None
    real = not paper
    if len(checkpoint) > 1 and any(c.startswith("scripted:") for c in checkpoint):
        raise click.UsageError("--checkpoint: a committee is of trader train checkpoints, not scripted policies")
    checkpoint = checkpoint[0] if len(checkpoint) == 1 else list(checkpoint)
    opts = LiveOptions(symbol=symbol, checkpoint=checkpoint, real=real, exchange=exchange, base_url=base_url,
                       testnet=testnet, keys=keys if real else None, db=db,
                       max_position=max_position, max_notional=max_notional, daily_loss_limit=daily_loss_limit,
                       max_order=max_order, duration=duration, interval_ms=interval_ms, depth=depth, encoder=encoder,
                       fee_bps=fee_bps, max_slippage_bps=max_slippage_bps, stale_after=stale_after,
                       flatten_on_kill=flatten_on_kill, flatten_on_exit=flatten_on_exit, clear_kill=clear_kill,
                       rebaseline=rebaseline, record_dir=record_dir, recv_window_ms=recv_window_ms,
                       trade_size=trade_size, connect_timeout=connect_timeout, market=market,
                       leverage=leverage, margin_mode=margin_mode, liquidation_buffer_pct=liquidation_buffer_pct,
                       risk=risk)
    opts.db = db or default_db(opts, state_dir)
    console = Console(soft_wrap=True)
    where = base_url or ("binance testnet" if testnet else exchange)
    policy = ", ".join(checkpoint) if isinstance(checkpoint, list) else checkpoint
    console.print(f"trader live: {symbol} on {where}, {'REAL orders' if real else 'paper'}, policy {policy}, "
                  f"state {opts.db}", highlight=False, markup=False)
    import ccxt

    from trader.store import StoreError

    try:
        code, result, message = run_live(opts, console)
    except ExchangeUnreachable as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(EXIT_ERROR)
    except (ValueError, FileNotFoundError, StoreError) as exc:  # a checkpoint or option that does not fit
        msg = keys.redact(str(exc)) if keys else str(exc)
        err.print(f"error: {msg}", highlight=False, markup=False)
        sys.exit(EXIT_REFUSED)
    except (RuntimeError, ccxt.BaseError) as exc:
        msg = keys.redact(str(exc)) if keys else str(exc)
        err.print(f"error: {type(exc).__name__}: {msg}", highlight=False, markup=False)
        sys.exit(EXIT_ERROR)
    if keys is not None:
        message = keys.redact(message)
    if result is not None:
        console.print(f"stopped: {message}; steps {result.steps}, orders {result.orders}, position "
                      f"{result.position.normalize():f}, PnL {result.equity:+.2f}; state in {opts.db}", highlight=False,
                      markup=False)
    else:
        err.print(message, highlight=False, markup=False)
    if code != EXIT_OK:
        sys.exit(code)


@click.command("record", context_settings=_SETTINGS)
@click.option("--exchange", default="binance", help="ccxt exchange id (binance spot).")
@click.option("--symbol", default="BTC/USDT", help="Market, ccxt style.")
@click.option("--base-url", default=None, metavar="URL", help="A local exchange (trader-sim serve).")
@click.option("--testnet", is_flag=True, help="Binance's spot testnet.")
@click.option("--rotate-mb", type=float, default=256.0, help="Start a new file past this compressed size.")
@click.option("--rotate-minutes", type=float, default=60.0, help="Start a new file after this many minutes.")
@click.option("--depth-stream", default="depth@100ms", help="Diff stream: depth@100ms or depth (1 s).")
@click.option("--snapshot-limit", type=int, default=1000, help="Levels a side of the REST snapshot.")
@click.option("--duration", type=float, default=None, metavar="SECONDS", help="Stop after SECONDS.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level (snapshots, gaps, reconnects).")
@out_option("Folder for the raw feed files (<symbol>_<time>_<n>.gz).", required=True, old=("--output",))
def record(exchange, symbol, out, base_url, testnet, rotate_mb, rotate_minutes, depth_stream, snapshot_limit,
           duration, verbose):
    """Record depth diffs, trades and bookTickers with REST snapshots into raw feed files that
    trader-sim convert reads (a new file with a fresh snapshot after every reconnect or gap)."""
    from rich.console import Console

    from trader.live.recorder import run_record

    _logging(verbose, None)
    console = Console(soft_wrap=True)
    console.print(f"recording {symbol} from {base_url or exchange} into {out} (Ctrl-C to stop)",
                  highlight=False, markup=False)
    stats, stream = run_record(exchange, symbol, out, base_url=base_url, duration=duration, rotate_mb=rotate_mb,
                               rotate_s=rotate_minutes * 60 if rotate_minutes else None, depth_stream=depth_stream,
                               snapshot_limit=snapshot_limit, testnet=testnet)
    s = stream.stats
    console.print(f"recorded {stats.lines:,} lines into {len(stats.files)} file(s): diffs {s.diffs_applied:,} applied, "
                  f"trades {s.trades:,}, tickers {s.tickers:,}; snapshots {s.snapshots}, gaps {s.gaps}, reconnects "
                  f"{s.reconnects}" + (f", {s.discarded_lines} unsynchronised lines dropped" if s.discarded_lines else ""),
                  highlight=False, markup=False)
    for f in stats.files:
        console.print(f"  wrote {f}", highlight=False, markup=False)
    if stats.recovered:
        console.print(f"  recovered {len(stats.recovered)} file(s) left by an interrupted run", highlight=False,
                      markup=False)


@click.group(cls=errors.Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Live trading and recording (the same commands as `trader live` and `trader record`)."""


main.add_command(live)
main.add_command(record)

if __name__ == "__main__":
    main()
