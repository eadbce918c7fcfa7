"""`trader train-encoder` and `trader embed`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from trader.nn.data import ALPHA_SCOPES, NORMS
from trader.options import SEED, out_option
from trader.nn.inputs import INPUTS
from trader.nn.models import MODELS
from trader.nn.train import LR_SCHEDULES, SELECT


def _parse_horizons(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter("horizons must be >= 1")
    return ks


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"seeds repeat: {text!r}")
    return seeds


@click.command("train-encoder")
@click.option("--data", "data_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder(s) from trader-sim convert; several are pooled. Default: the bundled sample.")
@click.option("--test-data", "test_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder(s) never trained on: every labelled row is scored, each dataset apart.")
@click.option("--lodo", is_flag=True,
              help="Leave one dataset out: for each --data dataset, train on the others and score on it.")
@click.option("--model", "models", multiple=True, type=click.Choice(MODELS),
              help="Model(s) to train (default: tcn and deeplob, ours first).")
@click.option("--window", type=click.IntRange(min=1), default=100, show_default=True, help="Rows of history per sample.")
@click.option("--horizons", default="10,20,50,100", show_default=True, help="Label horizons in rows.")
@click.option("--interval-ms", type=click.FloatRange(min=0, min_open=True), default=100.0, show_default=True, help="Row spacing (book sampled on a time grid).")
@click.option("--depth", type=click.IntRange(min=1), default=10, show_default=True, help="Book levels a side.")
@click.option("--inputs", type=click.Choice(INPUTS), default="book+of+ofi", show_default=True,
              help="Book features, order flow per level, OFI sums (trader.nn.inputs); of+ofi: no book levels "
                   "(tcn, tlob only).")
@click.option("--tcn-blocks", default=6, show_default=True,
              help="tcn: dilations 1 .. 2^(blocks-1); 6 blocks see 190 rows, more than the longest horizon.")
@click.option("--norm", type=click.Choice(NORMS), default="rolling", show_default=True,
              help="rolling: causal EW z-score per dataset; train: mean and std of the training rows.")
@click.option("--norm-halflife", default=5000.0, show_default=True,
              help="Rows, for --norm rolling (measured: 1,000 < 5,000 ≈ 20,000 on held-out data).")
@click.option("--alpha-scope", type=click.Choice(ALPHA_SCOPES), default="series", show_default=True,
              help="Label thresholds per dataset, or one pooled over the training datasets.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="At most; see --patience.")
@click.option("--patience", default=5, show_default=True,
              help="Stop after this many epochs without a better validation score (0: never early).")
@click.option("--select", type=click.Choice(SELECT), default="val_f1", show_default=True,
              help="Validation score that picks the epoch kept (val_f1: macro-F1 averaged over horizons).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Samples per optimizer step.")
@click.option("--learning-rate", default=3e-4, show_default=True,
              help="AdamW peak rate (measured on held-out data: 1e-3 overfits after one epoch).")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default="cosine", show_default=True,
              help="Learning rate over the run: cosine decay after a warm-up, or constant.")
@click.option("--weight-decay", default=1e-2, show_default=True, help="AdamW weight decay.")
@click.option("--dropout", default=0.1, show_default=True, help="tcn and tlob.")
@click.option("--skip/--no-skip", default=False, show_default=True,
              help="tcn: logits = a logistic regression on the input row, fitted first and frozen, + the deep "
                   "head started at 0 (measured best held out with --inputs of+ofi+trend --balance).")
@click.option("--balance/--no-balance", default=True, show_default=True,
              help="Every --data dataset weighs the same in the rows trained on and in the validation score.")
@click.option("--seeds", default=",".join(str(SEED + i) for i in range(3)), show_default=True, callback=lambda c, p, v: _parse_seeds(v),
              help="Seeds: every model is trained once per seed; the report gives mean and std.")
@click.option("--max-steps-per-epoch", default=0, show_default=True, help="Cap on optimizer steps per epoch (0: full pass).")
@click.option("--device", default="auto", show_default=True, help="auto (cuda, mps, cpu) or a torch device.")
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN]",
              help="Continue a run from its latest checkpoints: alone, the run in -o/--out (or under "
                   "--checkpoint-uri); or the run folder RUN. As in trader train.")
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
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also score the majority-class and OFI logistic-regression baselines on the same rows.")
@out_option("Run folder [default: runs/encoder__{models}__{date-time}].")
def train_encoder(data_dirs, test_dirs, lodo, models, out, window, horizons, interval_ms, depth, inputs, norm,
                  tcn_blocks, norm_halflife, alpha_scope, epochs, patience, select, batch_size, learning_rate, lr_schedule,
                  weight_decay, dropout, skip, balance, seeds, max_steps_per_epoch, device, resume, checkpoint_uri, keep_checkpoints,
                  save_freq, spot_metadata_url, nproc, dist_backend, baselines):
    """Train order-book encoders on mid-price direction at several horizons, keep the epoch best on the
    validation rows, score on the test split and on datasets never trained on; write a report. SIGTERM,
    SIGINT or a spot notice stop training with a checkpoint (exit status 0; 130 after SIGINT). Runs of
    several seeds (or folds) go to <out>/[<held-out dataset>/][seed<k>/]<model>."""
    from trader.run import distributed
    from trader.run.interrupt import exit_code
    from trader.run.launch import relaunch, write_result
    from trader.run.logger import run_dir as new_run_dir

    if resume not in (None, "latest"):  # --resume RUN: that run's folder (train's --resume RUN too)
        if out is not None and Path(out) != Path(resume):
            raise click.UsageError(f"--resume {resume} and -o/--out {out}: give the run folder once")
        out = resume
    kinds = models or ("tcn", "deeplob")
    if nproc > 1:
        if distributed.under_torchrun():
            raise click.UsageError("--nproc: already running under torchrun")
        ctx = click.get_current_context()
        if out is None:  # every process must write the same run folder
            ctx.params["out"] = str(new_run_dir("runs", "encoder", "+".join(kinds)))
            ctx.set_parameter_source("out", click.core.ParameterSource.COMMANDLINE)
        relaunch(ctx, nproc, "train-encoder")
        return
    if "deeplob" in kinds and not inputs.startswith("book"):
        raise click.UsageError(f"--inputs {inputs}: deeplob reads the book levels; train it with book inputs "
                               "(--model tcn alone, or --inputs book+of+ofi)")
    if lodo and len(data_dirs) < 2:
        raise click.UsageError(f"--lodo: needs at least 2 --data datasets, got {len(data_dirs)}")

    from torch.utils.tensorboard import SummaryWriter

    from trader.data.errors import FeedError
    from trader.nn.data import build, load_series
    from trader.nn.report import inference_cost_us, write_report
    from trader.nn.train import TrainConfig, baseline_scores, evaluate, train_model
    from trader.run.device import pick_device

    try:
        pick_device(device)  # a bad --device is refused before anything starts
    except ValueError as e:
        raise click.BadParameter(str(e).removeprefix("--device: "), param_hint="--device") from None
    dist = distributed.init(device, dist_backend)
    main = dist.is_main
    ks = _parse_horizons(horizons)
    run_dir = Path(dist.broadcast(out or str(new_run_dir("runs", "encoder", "+".join(kinds)))))
    if resume and not checkpoint_uri and not (run_dir / "data.json").is_file():
        raise click.UsageError(f"--resume: {run_dir} holds no run to resume (give its folder: --resume RUN)")
    opts = dict(horizons=ks, window=window, norm=norm, norm_halflife=norm_halflife, alpha_scope=alpha_scope)
    try:
        series = [load_series(d, depth=depth, interval_ms=interval_ms, inputs=inputs) for d in (data_dirs or [None])]
        tests = [load_series(d, depth=depth, interval_ms=interval_ms, inputs=inputs) for d in test_dirs]
        # (fold folder, training series, test-only series)
        folds = ([(s.name, [o for o in series if o is not s], [s, *tests]) for s in series] if lodo
                 else [("", series, tests)])
        datas = [build(tr, test_series=te, **opts) for _, tr, te in folds]
    except (FeedError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    run_dir.mkdir(parents=True, exist_ok=True)  # after the data loaded: a failed start leaves no empty run folder
    sources = [s.name for s in series]
    if main:
        (run_dir / "data.json").write_text(json.dumps({"data": [str(d) for d in data_dirs] or ["<bundled sample>"],
                                                       "test_data": [str(d) for d in test_dirs], "lodo": lodo,
                                                       "interval_ms": interval_ms, "depth": depth}, indent=2))
        where = f"{dist.world_size} ranks ({dist.backend}, {dist.device})" if dist.enabled else f"device {pick_device(device)}"
        click.echo(f"{where}; {sum(len(s.features) for s in series + tests):,} rows from {', '.join(sources + [s.name for s in tests])}")
        for split, per_k in datas[0].balance().items():
            click.echo(f"  {split}: " + "  ".join(f"{k} d/s/u {b['down']:.2f}/{b['stationary']:.2f}/{b['up']:.2f} "
                                                  f"({b['rows']})" for k, b in per_k.items()))
    writer = SummaryWriter(str(run_dir / "tb")) if main else None
    results, costs = {}, {}
    for (fold, train_series, test_series), data in zip(folds, datas):
        n_train = len(train_series)
        sets = {"test split": list(range(n_train))} if not lodo else {}
        # --lodo with --test-data: a --test-data dataset is scored once per fold, each under its own name
        sets |= {f"held out {s.name}" + (f" (without {fold})" if lodo and j else ""): [n_train + j]
                 for j, s in enumerate(test_series)}
        if baselines and main:
            for name, idx in sets.items():
                for m, sc in baseline_scores(data, "test", idx).items():
                    results.setdefault(name, {})[m] = [sc]
        for kind in kinds:
            for seed in seeds:
                cfg = TrainConfig(model=kind, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                  weight_decay=weight_decay, dropout=dropout, tcn_blocks=tcn_blocks, skip=skip,
                                  balance=balance,
                                  seed=seed, device=device,
                                  max_steps_per_epoch=max_steps_per_epoch, checkpoint_uri=checkpoint_uri,
                                  keep_checkpoints=keep_checkpoints, save_freq=save_freq, select=select,
                                  patience=patience, lr_schedule=lr_schedule,
                                  spot_metadata_url=spot_metadata_url, dist_backend=dist_backend)
                where = run_dir / fold / (f"seed{seed}" if len(seeds) > 1 else "")
                model, meta = train_model(data, cfg, where, resume=resume is not None, writer=writer, progress=main)
                if meta["interrupted"]:
                    if main:
                        writer.close()
                        click.echo(f"{kind}: stopped by {meta['interrupted']} at step {meta['global_step']}; "
                                   f"checkpoint saved: {meta['checkpoint']}")
                        nproc_flag = f" --nproc {dist.world_size}" if dist.enabled else ""
                        click.echo(f"resume with: trader train-encoder{nproc_flag} --resume {run_dir} "
                                   + (f"--checkpoint-uri {checkpoint_uri} " if checkpoint_uri else "")
                                   + "(and the same options)")
                        write_result({"interrupted": meta["interrupted"], "checkpoint": meta["checkpoint"]})
                    dist.close()
                    sys.exit(exit_code(meta["interrupted"]))
                if not main:
                    continue
                for name, idx in sets.items():
                    results.setdefault(name, {}).setdefault(kind, []).append(evaluate(model, data, cfg, "test", idx))
                c = costs.setdefault(kind, {"params": meta["params"], "train_seconds": 0.0, "samples": 0,
                                            "chosen_epochs": [], "epochs_run": [], "runs": [],
                                            "inference_us": inference_cost_us(model, data.series[0].features.shape[1],
                                                                              data.window)})
                c["train_seconds"] += meta["train_seconds"]
                c["samples"] += meta["samples"]
                c["samples_per_s"] = c["samples"] / max(c["train_seconds"], 1e-9)
                c["chosen_epochs"].append(meta["best_epoch"])
                c["epochs_run"].append(len(meta["history"]))
                c["runs"].append(str(where / kind / "best"))
                click.echo(f"{kind} {fold + ' ' if fold else ''}seed {seed}: {meta['params']:,} params, "
                           f"{meta['train_seconds']:.1f} s, {c['samples_per_s']:.0f} samples/s, epoch kept "
                           f"{meta['best_epoch']} of {len(meta['history'])} ({select})")
    dist.close()
    if not main:
        return
    writer.close()
    d0 = datas[0]
    info = {"instruments": sources, "test_data": [s.name for s in tests], "lodo": lodo, "horizons": list(ks),
            "window": window, "levels": depth, "inputs": inputs, "norm": d0.norm, "alpha_scope": alpha_scope,
            "alphas": {s.name: a for s, a in zip(d0.series, d0.alphas)}, "class_balance": d0.balance(),
            "seeds": list(seeds)}
    write_report(run_dir, info, results, costs)
    click.echo((run_dir / "report.md").read_text())
    click.echo(f"wrote {run_dir}/report.md, report.json, models in {run_dir}/.../<model>/best and TensorBoard in {run_dir}/tb")
    write_result({"interrupted": None, "run_dir": str(run_dir)})


@click.command("embed")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, file_okay=False),
              help="An encoder folder of a train-encoder run (e.g. runs/encoder__.../tcn).")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Dataset folder (default: the bundled sample, written to --out).")
@out_option("Output .npy [default: <data>/embeddings.npy].", file=True)
def embed(checkpoint, data_dir, out):
    """Embed every row of a dataset once; the env reads the result as its observation matrix."""
    from trader.nn.embed import embed_dataset

    try:
        target = embed_dataset(checkpoint, data_dir, out)
    except (ValueError, FileNotFoundError) as e:
        if str(checkpoint) not in str(e):
            raise
        raise click.BadParameter(str(e), param_hint="--checkpoint") from None
    click.echo(f"wrote {target} and {target.with_suffix('.json')}")
