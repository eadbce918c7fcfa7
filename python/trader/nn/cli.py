"""`trader train-encoder` and `trader embed`."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click


def _parse_horizons(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter("horizons must be >= 1")
    return ks


@click.command("train-encoder")
@click.option("--data", "data_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder(s) from trader-sim convert; several are pooled. Default: the bundled sample.")
@click.option("--model", "models", multiple=True, type=click.Choice(["tcn", "deeplob"]),
              help="Model(s) to train (default: both, ours first).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder (default runs/encoder__<time>).")
@click.option("--window", default=100, show_default=True, help="Rows of history per sample.")
@click.option("--horizons", default="10,20,50,100", show_default=True, help="Label horizons in rows.")
@click.option("--interval-ms", default=100.0, show_default=True, help="Row spacing (book sampled on a time grid).")
@click.option("--depth", default=10, show_default=True, help="Book levels a side.")
@click.option("--epochs", default=4, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--learning-rate", default=1e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--max-steps-per-epoch", default=0, show_default=True, help="Cap on optimizer steps per epoch (0: full pass).")
@click.option("--device", default="auto", show_default=True, help="auto (cuda, mps, cpu) or a torch device.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out (or under --checkpoint-uri) from its latest checkpoint.")
@click.option("--checkpoint-uri", default=None, metavar="URI",
              help="Training checkpoints under URI/<model>: a folder or s3://bucket/prefix "
                   "[default: <out>/<model>/checkpoints].")
@click.option("--keep-checkpoints", type=click.IntRange(min=0), default=3, show_default=True,
              help="Checkpoints kept per model, the newest (0: all).")
@click.option("--save-freq", type=click.IntRange(min=0), default=0, show_default=True,
              help="Optimizer steps between checkpoints (0: at each epoch's end only; also on SIGTERM, SIGINT "
                   "and spot notices).")
@click.option("--spot-metadata-url", default=None, metavar="URL",
              help="Poll this instance metadata address for spot interruption notices ('aws': "
                   "http://169.254.169.254) [default: env TRADER_SPOT_METADATA_URL, else off].")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes: torchrun --nproc-per-node N over this command (one per GPU on "
                   "cuda with NCCL, gloo on the CPU).")
@click.option("--dist-backend", type=click.Choice(["auto", "gloo", "nccl"]), default="auto", show_default=True,
              help="torch.distributed backend with --nproc / torchrun.")
@click.option("--baselines/--no-baselines", default=True, show_default=True)
def train_encoder(data_dirs, models, out, window, horizons, interval_ms, depth, epochs, batch_size, learning_rate,
                  seed, max_steps_per_epoch, device, resume, checkpoint_uri, keep_checkpoints, save_freq,
                  spot_metadata_url, nproc, dist_backend, baselines):
    """Train order-book encoders on mid-price direction at several horizons; write a report. SIGTERM,
    SIGINT or a spot notice stop training with a checkpoint (exit status 0; 130 after SIGINT)."""
    from trader.run import distributed
    from trader.run.interrupt import exit_code
    from trader.run.launch import relaunch, write_result

    if nproc > 1:
        if distributed.under_torchrun():
            raise click.UsageError("--nproc: already running under torchrun")
        ctx = click.get_current_context()
        if out is None:  # every process must write the same run folder
            ctx.params["out"] = str(Path("runs") / f"encoder__{time.strftime('%Y%m%d-%H%M%S')}")
            ctx.set_parameter_source("out", click.core.ParameterSource.COMMANDLINE)
        relaunch(ctx, nproc, "train-encoder")
        return

    from torch.utils.tensorboard import SummaryWriter

    from trader.data.errors import FeedError
    from trader.nn.data import build, load_series
    from trader.nn.train import TrainConfig, baseline_scores, evaluate, inference_cost_us, train_model, write_report
    from trader.run.device import pick_device

    dist = distributed.init(device, dist_backend)
    main = dist.is_main
    ks = _parse_horizons(horizons)
    run_dir = Path(dist.broadcast(out or str(Path("runs") / f"encoder__{time.strftime('%Y%m%d-%H%M%S')}")))
    if resume and not checkpoint_uri and not (run_dir / "data.json").is_file():
        raise click.UsageError(f"--resume: {run_dir} holds no run to resume (give its folder with --out)")
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        series = [load_series(d, depth=depth, interval_ms=interval_ms) for d in (data_dirs or [None])]
        data = build(series, horizons=ks, window=window)
    except (FeedError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sources = [s.name for s in series]
    if main:
        (run_dir / "data.json").write_text(json.dumps({"data": [str(d) for d in data_dirs] or ["<bundled sample>"],
                                                       "interval_ms": interval_ms, "depth": depth}, indent=2))
        where = f"{dist.world_size} ranks ({dist.backend}, {dist.device})" if dist.enabled else f"device {pick_device(device)}"
        click.echo(f"{where}; {sum(len(s.features) for s in series):,} rows from {', '.join(sources)}")
        for split, per_k in data.balance().items():
            click.echo(f"  {split}: " + "  ".join(f"{k} d/s/u {b['down']:.2f}/{b['stationary']:.2f}/{b['up']:.2f} "
                                                  f"({b['rows']})" for k, b in per_k.items()))
    writer = SummaryWriter(str(run_dir / "tb")) if main else None
    results, costs = {}, {}
    if baselines and main:
        results.update(baseline_scores(data))
    for kind in models or ("tcn", "deeplob"):
        cfg = TrainConfig(model=kind, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                          device=device, max_steps_per_epoch=max_steps_per_epoch, checkpoint_uri=checkpoint_uri,
                          keep_checkpoints=keep_checkpoints, save_freq=save_freq,
                          spot_metadata_url=spot_metadata_url, dist_backend=dist_backend)
        model, meta = train_model(data, cfg, run_dir, resume=resume, writer=writer, progress=main)
        if meta["interrupted"]:
            if main:
                writer.close()
                click.echo(f"{kind}: stopped by {meta['interrupted']} at step {meta['global_step']}; checkpoint "
                           f"saved: {meta['checkpoint']}")
                nproc_flag = f" --nproc {dist.world_size}" if dist.enabled else ""
                click.echo(f"resume with: trader train-encoder{nproc_flag} --out {run_dir} --resume "
                           + (f"--checkpoint-uri {checkpoint_uri} " if checkpoint_uri else "")
                           + "(and the same options)")
                write_result({"interrupted": meta["interrupted"], "checkpoint": meta["checkpoint"]})
            dist.close()
            sys.exit(exit_code(meta["interrupted"]))
        if not main:
            continue
        results[kind] = evaluate(model, data, cfg)
        costs[kind] = {"params": meta["params"], "train_seconds": meta["train_seconds"],
                       "samples_per_s": meta["samples"] / max(meta["train_seconds"], 1e-9),
                       "epochs": cfg.epochs, "config": asdict(cfg),
                       "inference_us": inference_cost_us(model, data.series[0].features.shape[1], data.window)}
        click.echo(f"{kind}: {meta['params']:,} params, {meta['train_seconds']:.1f} s, "
                   f"{costs[kind]['samples_per_s']:.0f} samples/s, CPU inference {costs[kind]['inference_us']:.0f} µs/tick")
    dist.close()
    if not main:
        return
    writer.close()
    write_report(run_dir, data, results, costs, sources)
    click.echo((run_dir / "report.md").read_text())
    click.echo(f"wrote {run_dir}/report.md, report.json, models in {run_dir}/<model>/ and TensorBoard in {run_dir}/tb")
    write_result({"interrupted": None, "run_dir": str(run_dir)})


@click.command("embed")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, file_okay=False),
              help="An encoder folder of a train-encoder run (e.g. runs/encoder__.../tcn).")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Dataset folder (default: the bundled sample, written to --out).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output .npy (default: <data>/embeddings.npy).")
def embed(checkpoint, data_dir, out):
    """Embed every row of a dataset once; the env reads the result as its observation matrix."""
    from trader.nn.embed import embed_dataset

    target = embed_dataset(checkpoint, data_dir, out)
    click.echo(f"wrote {target} and {target.with_suffix('.json')}")
