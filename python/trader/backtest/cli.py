"""`trader backtest --checkpoint RUN [--data DIR]`: the trained policy on the held-out rows, next to
flat, buy-and-hold and an order-imbalance rule, with the same execution model."""

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
@click.option("--fee-bps", type=float, default=None, help="Taker fee [default: the run's].")
@click.option("--latency-steps", type=int, default=None, help="Order latency in steps [default: the run's].")
@click.option("--imbalance-threshold", type=float, default=0.6, show_default=True,
              help="Order-imbalance baseline: trade when |imbalance| exceeds this.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder [default: RUN/backtest].")
def backtest(checkpoint, data, train_fraction, fee_bps, latency_steps, imbalance_threshold, out):
    """Backtest a trained agent on held-out data; writes backtest.md, backtest.json and equity.png."""
    from trader.backtest.engine import (buy_and_hold_policy, compute_metrics, flat_policy, held_out_rows,
                                        imbalance_policy, run_backtest)
    from trader.backtest.report import write_report
    from trader.rl.policy import observation_market

    if checkpoint is None:
        runs = sorted(Path("runs").glob("trader__*"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise click.UsageError("--checkpoint: no runs/trader__* folder here; train one with `trader train`")
        checkpoint = str(runs[-1])
        click.echo(f"backtesting {checkpoint}")
    policy, args, algo = load_trained_policy(checkpoint)
    data = data if data is not None else args.get("data")
    try:  # an agent trained with --encoder observes that encoder's embeddings (trader.rl.policy)
        market = observation_market(args, data)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(f"--checkpoint: {e}") from None
    frac = train_fraction if train_fraction is not None else args.get("train_fraction", 0.7)
    start, end = held_out_rows(len(market.book), frac, 0)
    env_cfg = dict(fee_bps=fee_bps if fee_bps is not None else args["fee_bps"],
                   latency_steps=latency_steps if latency_steps is not None else args["latency_steps"],
                   trade_size=args["trade_size"], max_position=args["max_position"],
                   continuous=args["continuous"], reward_scale=args["reward_scale"])
    agents = int(args.get("num_agents", 1))
    results = []
    trained = run_backtest(market, policy, algo, start=start, end=end, num_agents=agents, **env_cfg)
    results += trained if isinstance(trained, list) else [trained]
    cont = bool(args["continuous"])
    for name, pol in (("buy_and_hold", buy_and_hold_policy(cont)), ("flat", flat_policy(cont)),
                      ("order_imbalance", imbalance_policy(market, cont, imbalance_threshold))):
        results.append(run_backtest(market, pol, name, start=start, end=end, **env_cfg))
    interval_s = float(np.median(np.diff(market.ts))) / 1e9 if len(market.ts) > 1 else 0.1
    initial_cash = 100_000.0
    for r in results:
        compute_metrics(r, interval_s, initial_cash)
    run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent.parent
    out_dir = Path(out) if out else run_dir / "backtest"
    ctx = {"data": str(data) if data else "<bundled sample>", "symbol": market.symbol, "start": start, "end": end,
           "steps": end - start - env_cfg["latency_steps"] - 1, "interval_s": interval_s,
           "fee_bps": env_cfg["fee_bps"], "latency_steps": env_cfg["latency_steps"], "initial_cash": initial_cash,
           "checkpoint": str(checkpoint), "algo": algo, "train_fraction": frac}
    write_report(out_dir, results, ctx)
    click.echo((out_dir / "backtest.md").read_text())
    click.echo(f"wrote {out_dir}/backtest.md, backtest.json and equity.png")
    if any(not np.isfinite(r.equity).all() for r in results):
        raise click.ClickException("non-finite equity in a backtest: see backtest.json")
