"""`trader backtest --checkpoint RUN [--data DIR]`: the trained policy on the held-out rows, next to
the baselines (trader.backtest.baselines), with the same execution model."""

from __future__ import annotations

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
@click.option("--checkpoint", default=None, type=click.Path(exists=True),
              help="A run folder of trader train (its latest checkpoint) or a checkpoint file "
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
              help="Report folder [default: RUN/backtest].")
def backtest(checkpoint, data, train_fraction, taker_fee_bps, maker_fee_bps, order_latency_ms, imbalance_threshold,
             quote_offset_ticks, as_gamma, out):
    """Backtest a trained agent on held-out data; writes backtest.md, backtest.json and equity.png.

    Next to it, on the same rows and execution model: flat, buy-and-hold and an order-imbalance rule
    (market orders) and, when the run quotes, a fixed-spread quoter and Avellaneda-Stoikov (2008)
    fitted on the training rows only."""
    from trader.backtest.baselines import (buy_and_hold_policy, flat_policy, imbalance_policy,
                                           market_making_baselines)
    from trader.backtest.engine import compute_metrics, env_config_from_run, held_out_rows, run_backtest
    from trader.backtest.report import write_report
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
    agents = int(args.get("num_agents", 1))
    results = []
    trained = run_backtest(market, policy, algo, start=start, end=end, num_agents=agents, **env_cfg)
    results += trained if isinstance(trained, list) else [trained]
    full_cfg = {**spec.defaults(), **env_cfg}
    actions = full_cfg["actions"]
    quoting = actions.startswith("quote")
    # Market-order baselines trade in the market-order env (the run's, or discrete for a quote run).
    orders_cfg = dict(env_cfg, actions="discrete" if quoting else actions)
    cont = orders_cfg["actions"] == "continuous"
    for name, pol in (("buy_and_hold", buy_and_hold_policy(cont)), ("flat", flat_policy(cont)),
                      ("order_imbalance", imbalance_policy(market, cont, imbalance_threshold))):
        results.append(run_backtest(market, pol, name, start=start, end=end, **orders_cfg))
    notes = []
    if quoting:
        try:
            quoters, notes = market_making_baselines(market, dataset.events, env_cfg, start, end, quote_offset_ticks,
                                                     as_gamma)
        except ValueError as e:
            raise click.ClickException(f"market-making baselines on the training rows: {e}") from None
        for name, pol in quoters:
            results.append(run_backtest(market, pol, name, start=start, end=end, **dict(env_cfg, actions="quote")))
    interval_s = float(np.median(np.diff(market.ts))) / 1e9 if len(market.ts) > 1 else 0.1
    initial_cash = float(full_cfg["initial_cash"])
    for r in results:
        compute_metrics(r, interval_s, initial_cash)
    run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent.parent
    out_dir = Path(out) if out else run_dir / "backtest"
    ctx = {"data": str(data) if data else "<bundled sample>", "symbol": market.symbol, "start": start, "end": end,
           "steps": end - start - 1, "interval_s": interval_s, "actions": actions,
           "maker_fee_bps": full_cfg["maker_fee_bps"], "taker_fee_bps": full_cfg["taker_fee_bps"],
           "order_latency_ns": full_cfg["order_latency_ns"], "initial_cash": initial_cash,
           "checkpoint": str(checkpoint), "algo": algo, "train_fraction": frac, "baseline_notes": notes}
    write_report(out_dir, results, ctx)
    click.echo((out_dir / "backtest.md").read_text())
    click.echo(f"wrote {out_dir}/backtest.md, backtest.json and equity.png")
    if any(not np.isfinite(r.equity).all() for r in results):
        raise click.ClickException("non-finite equity in a backtest: see backtest.json")
