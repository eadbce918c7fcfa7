"""`trader backtest --checkpoint RUN [--data DIR]`: the trained policy on the held-out rows, next to
the baselines (trader.backtest.baselines), with the same execution model."""

from __future__ import annotations

import re
from pathlib import Path

import click
import numpy as np


def load_trained_policy(checkpoint: str, device: str = "cpu"):
    """(policy(obs, info) -> actions, saved training args, algo) from a run folder, its checkpoint store
    (a folder or s3://bucket/prefix) or one checkpoint in it (.../step_N), trained on the trader env."""
    from trader.rl.policy import load
    from trader.store import StoreError

    try:
        trained = load(checkpoint, device)
    except (FileNotFoundError, ValueError, StoreError) as e:
        raise click.UsageError(f"--checkpoint: {e}") from None
    return (lambda obs, info: trained.act(obs)), trained.args, trained.algo


@click.command("backtest")
@click.option("--checkpoint", default=None, metavar="RUN|URI",
              help="A run folder of trader train (its latest checkpoint), a checkpoint store (a folder or "
                   "s3://bucket/prefix: its latest) or one checkpoint in it (.../step_N) "
                   "[default: the newest runs/trader__* folder].")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Dataset folder [default: the run's own data, else the bundled sample].")
@click.option("--train-fraction", type=float, default=None,
              help="Rows before this fraction were for training [default: the run's].")
@click.option("--taker-fee-bps", type=float, default=None, help="Fee on market orders, bps [default: the run's].")
@click.option("--maker-fee-bps", type=float, default=None,
              help="Fee on limit-order fills, bps; negative = rebate [default: the run's].")
@click.option("--order-latency-ms", type=float, default=None,
              help="Order entry latency against the exchange timestamps, ms [default: the run's].")
@click.option("--imbalance-threshold", type=float, default=0.6, show_default=True,
              help="Order-imbalance baseline: trade when |imbalance| exceeds this.")
@click.option("--quote-offset-ticks", type=int, default=0, show_default=True,
              help="Fixed-spread baseline (quote runs): quote this many ticks from each touch (-1: one inside).")
@click.option("--as-gamma", type=float, default=0.01, show_default=True,
              help="Avellaneda-Stoikov baseline (quote runs): risk aversion, per tick per quote size.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder [default: RUN/backtest; for an s3:// checkpoint backtests/BUCKET_PREFIX].")
def backtest(checkpoint, data, train_fraction, taker_fee_bps, maker_fee_bps, order_latency_ms, imbalance_threshold,
             quote_offset_ticks, as_gamma, out):
    """Backtest a trained agent on held-out data; writes backtest.md, backtest.json and equity.png.

    Next to it, on the same rows and execution model: flat, buy-and-hold and an order-imbalance rule
    (market orders) and, when the run quotes, a fixed-spread quoter and Avellaneda-Stoikov (2008)
    fitted on the training rows only."""
    from trader.backtest.engine import (BaselineOptions, backtest_with_baselines, compute_metrics,
                                        env_config_from_run, held_out_rows, sampling_interval_s)
    from trader.backtest.report import period_utc, write_report
    from trader.data.dataset import load_dataset
    from trader.rl.policy import observation_market
    from trader.sim import spec

    if checkpoint is None:
        runs = sorted(Path("runs").glob("trader__*"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise click.UsageError("--checkpoint: no runs/trader__* folder here; train one with `trader train`")
        checkpoint = str(runs[-1])
        click.echo(f"backtesting {checkpoint}")
    for flag, value in (("--taker-fee-bps", taker_fee_bps), ("--order-latency-ms", order_latency_ms)):
        if value is not None and not value >= 0:
            raise click.BadParameter(f"expected a number >= 0, got {value}", param_hint=flag)
    if maker_fee_bps is not None and not np.isfinite(maker_fee_bps):
        raise click.BadParameter(f"expected a finite number, got {maker_fee_bps}", param_hint="--maker-fee-bps")
    if not as_gamma > 0:
        raise click.BadParameter(f"expected a number > 0, got {as_gamma}", param_hint="--as-gamma")
    policy, args, algo = load_trained_policy(checkpoint)
    data = data if data is not None else args.get("data")
    dataset = load_dataset(data)  # the Avellaneda-Stoikov fit reads its events
    try:  # an agent trained with --encoder observes that encoder's embeddings (trader.rl.policy)
        market = observation_market(args, data)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(f"--checkpoint: {e}") from None
    frac = train_fraction if train_fraction is not None else args.get("train_fraction", 0.7)
    start, end = held_out_rows(len(market.book), frac, 0)
    try:
        env_cfg = env_config_from_run(
            args, taker_fee_bps=taker_fee_bps, maker_fee_bps=maker_fee_bps,
            order_latency_ns=None if order_latency_ms is None else round(order_latency_ms * 1e6))
    except ValueError as e:
        raise click.UsageError(f"--checkpoint: the run's env options: {e}") from None
    env_cfg["num_agents"] = int(args.get("num_agents", 1))
    try:
        results, notes = backtest_with_baselines(market, dataset.events, policy, algo, env_cfg, start=start, end=end,
                                                 baselines=BaselineOptions(imbalance_threshold, quote_offset_ticks,
                                                                           as_gamma))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    full_cfg = {**spec.defaults(), **env_cfg}
    interval_s = sampling_interval_s(market)
    for r in results:
        compute_metrics(r, interval_s)
    out_dir = Path(out) if out else default_report_dir(checkpoint)
    ctx = {"data": str(data) if data else "<bundled sample>", "symbol": market.symbol, "start": start, "end": end,
           "steps": end - start - 1, "interval_s": interval_s, "actions": full_cfg["actions"],
           "period_utc": period_utc(market, start, end),
           "maker_fee_bps": full_cfg["maker_fee_bps"], "taker_fee_bps": full_cfg["taker_fee_bps"],
           "order_latency_ns": full_cfg["order_latency_ns"], "trade_size": full_cfg["trade_size"],
           "max_position": full_cfg["max_position"], "checkpoint": str(checkpoint), "algo": algo,
           "train_fraction": frac, "baseline_notes": notes}
    write_report(out_dir, results, ctx)
    click.echo((out_dir / "backtest.md").read_text())
    click.echo(f"wrote {out_dir}/backtest.md, backtest.json, equity.png and actions.png")
    if any(not np.isfinite(r.equity).all() for r in results):
        raise click.ClickException("non-finite equity in a backtest: see backtest.json")


def default_report_dir(checkpoint: str) -> Path:
    """RUN/backtest for a local run folder (or RUN/checkpoints/step_N); backtests/BUCKET_PREFIX here for
    a checkpoint in S3."""
    if checkpoint.startswith("s3://"):
        return Path("backtests") / re.sub(r"[^A-Za-z0-9_.-]+", "_", checkpoint[len("s3://"):]).strip("_")
    path = Path(checkpoint)
    if path.name.startswith("step_"):
        path = path.parent.parent
    elif path.name == "checkpoints":
        path = path.parent
    return path / "backtest"

