"""`trader backtest --checkpoint RUN [--data DIR]`: the trained policy on the held-out rows, next to
the baselines (trader.backtest.baselines), with the same execution model. Several --checkpoint: their committee
(trader.rl.committee) trades as one agent."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from trader.options import out_option
from trader.sim.flags import RISK_OPTIONS, env_options, flag_message, pop_env_values

# The execution costs and timing a backtest may change from the run's (the rest is the run's own env).
COST_OPTIONS = ("taker_fee_bps", "maker_fee_bps", "order_latency_ns", "cancel_latency_ns", "queue_model", "queue_power")


def load_trained_policy(checkpoints: tuple[str, ...], device: str = "cpu"):
    """(policy(obs, info) -> actions, saved training args, algo, the checkpoint read) from a run folder,
    its checkpoint store (a folder or s3://bucket/prefix) or one checkpoint in it (.../step_N), trained
    on the trader env; for several, their committee (trader.rl.committee). A corrupt latest checkpoint
    falls back to the newest whole one (trader.store)."""
    from trader.rl.committee import load_committee
    from trader.store import StoreError

    try:
        trained = load_committee(checkpoints, device)
    except (FileNotFoundError, ValueError, StoreError) as e:
        raise click.UsageError(f"--checkpoint: {e}") from None
    return (lambda obs, info: trained.act(obs)), trained.args, trained.algo, trained.checkpoint


def default_out_dir(checkpoints: tuple[str, ...]) -> Path:
    """RUN/backtest for a run folder (or a checkpoint inside it); runs/backtest__{last part} for a store URI;
    runs/backtest__committee_of_{n} for several."""
    if len(checkpoints) > 1:
        return Path("runs") / f"backtest__committee_of_{len(checkpoints)}"
    checkpoint = checkpoints[0]
    if "://" in checkpoint:
        return Path("runs") / ("backtest__" + checkpoint.rstrip("/").rsplit("/", 1)[-1])
    path = Path(checkpoint)
    while path.name.startswith("step_") or path.name == "checkpoints":
        path = path.parent
    return path / "backtest"


@click.command("backtest")
@click.option("--checkpoint", multiple=True, metavar="RUN|URI",
              help="A run folder of trader train (its latest checkpoint), a checkpoint store (a folder or "
                   "s3://bucket/prefix: its latest) or one checkpoint in it (.../step_N); given several times, "
                   "the committee of those agents (each step: what a strict majority of them backs), as is the "
                   "folder of trader train --committee "
                   "[default: the newest runs/trader__* folder].")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Dataset folder, collection or folder of datasets; each gets its own report "
                   "[default: the run's own data (every dataset it trained on), else the bundled sample].")
@click.option("--train-fraction", type=float, default=None,
              help="Rows before this fraction were for training [default: the run's; for the folder of trader "
                   "train --choose-among, the choice's: the agent was chosen on the rows just before it]")
@env_options(COST_OPTIONS + RISK_OPTIONS, default_note="the run's")
@click.option("--imbalance-threshold", type=float, default=0.6, show_default=True,
              help="Order-imbalance baseline: trade when |imbalance| exceeds this.")
@click.option("--quote-offset-ticks", type=int, default=0, show_default=True,
              help="Fixed-spread baseline (quote runs): quote this many ticks from each touch (-1: one inside).")
@click.option("--as-gamma", type=float, default=0.01, show_default=True,
              help="Avellaneda-Stoikov baseline (quote runs): risk aversion, per tick per quote size.")
@out_option("Report folder [default: RUN/backtest; for a store URI, runs/backtest__{prefix}].")
def backtest(checkpoint, data, train_fraction, imbalance_threshold, quote_offset_ticks, as_gamma, out, **env_flags):
    """Backtest a trained agent on held-out data; writes backtest.md, backtest.json and equity.png.

    Next to it, on the same rows and execution model: flat, buy-and-hold and an order-imbalance rule
    (market orders) and, when the run quotes, a fixed-spread quoter and Avellaneda-Stoikov (2008)
    fitted on the training rows only."""
    from trader.sim.env import dataset_folders

    if not checkpoint:
        runs = sorted(Path("runs").glob("trader__*"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise click.UsageError("--checkpoint: no runs/trader__* folder here; train one with `trader train`")
        checkpoint = (str(runs[-1]),)
        click.echo(f"backtesting {checkpoint[0]}")
    overrides = pop_env_values(env_flags)
    if not as_gamma > 0:
        raise click.BadParameter(f"expected a number > 0, got {as_gamma}", param_hint="--as-gamma")
    policy, args, algo, used = load_trained_policy(checkpoint)
    click.echo(f"policy: {algo} checkpoint {used}")  # after a fallback, the older step actually used
    if train_fraction is None:  # the folder of trader train --choose-among: its agent was chosen on the rows before
        # its own fraction, so its held-out rows are the choice's; of --committee: the rows its members were tested on
        from trader.run.checkpoints import read_choice, read_committee

        chosen = {c: (read_choice(c) or read_committee(c) or {}).get("train_fraction") for c in checkpoint}
        if len(set(chosen.values())) > 1:
            raise click.UsageError("--checkpoint: the agents were chosen on different rows (" + ", ".join(
                f"{c}: {'its own training fraction' if f is None else f'train fraction {f}'}" for c, f in chosen.items())
                + "); give --train-fraction past every member's training rows")
        train_fraction = next(iter(chosen.values()))
    out_dir = Path(out) if out else default_out_dir(checkpoint)
    data = data if data is not None else args.get("data")
    try:  # a run trained on several datasets is tested on the held-out tail of each (issue 13)
        folders = [None] if not data else dataset_folders(data)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(f"--data: {e}") from None
    names = [f.name for f in folders] if len(folders) > 1 else [None]
    if len(set(names)) < len(names):
        names = [f"{i:02d}_{f.name}" for i, f in enumerate(folders)]
    for folder, name in zip(folders, names):
        _backtest_dataset(folder, out_dir / name if name else out_dir, policy, args, algo, checkpoint, used, overrides,
                          train_fraction, imbalance_threshold, quote_offset_ticks, as_gamma)


def _backtest_dataset(data, out_dir, policy, args, algo, checkpoint, used, overrides, train_fraction,
                      imbalance_threshold, quote_offset_ticks, as_gamma) -> None:
    """The backtest of one dataset's held-out rows, written to out_dir."""
    from trader.backtest.engine import env_config_from_run, held_out_rows, period_utc
    from trader.backtest.report import write_report
    from trader.backtest.suite import BaselineOptions, run_agent, run_baselines, step_seconds
    from trader.data.dataset import load_dataset
    from trader.rl.policy import observation_market
    from trader.sim import spec

    dataset = load_dataset(data)  # the Avellaneda-Stoikov fit reads its events
    try:  # an agent trained with --encoder observes that encoder's embeddings (trader.rl.policy)
        market = observation_market(args, data)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(f"--checkpoint: {e}") from None
    frac = train_fraction if train_fraction is not None else args.get("train_fraction", 0.7)
    start, end = held_out_rows(len(market.book), frac, 0)
    try:
        env_cfg = env_config_from_run(args, **overrides)
        spec.check_config(**env_cfg)  # the flags with the run's own options (e.g. --guard-sides and its guard window)
    except ValueError as e:
        raise click.UsageError(flag_message(str(e)) if any(k in str(e) for k in overrides)
                               else f"--checkpoint: the run's env options: {e}") from None
    try:  # the env's checks against this data (e.g. a move guard that could never arm on it)
        results = run_agent(market, policy, algo, env_cfg, start, end, int(args.get("num_agents", 1)))
    except ValueError as e:
        if not any(str(e).startswith(k + ":") for k in overrides):
            raise
        raise click.UsageError(flag_message(str(e))) from None
    try:
        baselines, notes = run_baselines(market, dataset.events, env_cfg, start, end,
                                         BaselineOptions(imbalance_threshold, quote_offset_ticks, as_gamma))
    except ValueError as e:
        raise click.ClickException(f"baselines on the training rows: {e}") from None
    results += baselines
    full_cfg = {**spec.defaults(), **env_cfg}
    interval_s = step_seconds(market)
    ctx = {"data": str(data) if data else "<bundled sample>", "symbol": market.symbol, "start": start, "end": end,
           "steps": end - start - 1, "interval_s": interval_s, "actions": full_cfg["actions"],
           "maker_fee_bps": full_cfg["maker_fee_bps"], "taker_fee_bps": full_cfg["taker_fee_bps"],
           "order_latency_ns": full_cfg["order_latency_ns"], "period_utc": period_utc(market, start, end),
           **{k: full_cfg[k] for k in RISK_OPTIONS},
           "checkpoint": ", ".join(checkpoint), "checkpoint_read": used, "algo": algo, "train_fraction": frac,
           "baseline_notes": notes}
    write_report(out_dir, results, ctx)
    click.echo((out_dir / "backtest.md").read_text())
    click.echo(f"wrote {out_dir}/backtest.md, backtest.json and equity.png")
    if any(not np.isfinite(r.equity).all() for r in results):
        raise click.ClickException("non-finite equity in a backtest: see backtest.json")
