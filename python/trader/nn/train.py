"""Training and evaluation of the encoders, with checkpoints, resume, TensorBoard and a report.

Run folder layout (one per `trader train-encoder` run):
    <run>/<model>/weights.safetensors   model weights (+ normalization mean/std), exported each epoch
    <run>/<model>/config.json           model and data settings, needed to embed
    <run>/<model>/best/                 the same for the epoch kept: best on the validation rows by
                                        TrainConfig.select (loss or macro-F1); meta["best_epoch"] names it
    <run>/<model>/checkpoints/          training checkpoints (trader.store; or --checkpoint-uri URI/<model>,
                                        a folder or s3://bucket/prefix): weights as safetensors, optimizer
                                        and every rank's RNG states, and in the metadata the epoch, the step
                                        within it, the history and the config; the newest --keep-checkpoints
    <run>/report.json, report.md        trader.nn.report: scores per horizon, mean and std over seeds
    <run>/tb/                           TensorBoard scalars

Checkpoints are written every --save-freq optimizer steps, at every epoch's end, and on SIGTERM, SIGINT
or a spot interruption notice (then training stops: `meta["interrupted"]` says why); --resume continues
from the latest one, inside the epoch if it was cut short, and gives the same weights as an
uninterrupted run on the CPU. Under torchrun (or `trader train-encoder --nproc N`) the model trains data
parallel (see trader.run.distributed): every rank takes its own slice of each epoch's permutation
(batch b of the epoch goes to rank b % N, so an epoch is one pass over the training rows by all ranks
together), gradients are averaged, rank 0 validates, exports and saves.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trader.nn.baselines import logistic_regression, logistic_weights, majority_predict, ofi_features, scores
from trader.nn.data import EncoderData
from trader.nn.models import build_model
from trader.run import distributed
from trader.run.checkpoints import open_store, resume_point, save_checkpoint
from trader.run.device import rng_state, set_rng_state, setup_torch
from trader.run.interrupt import stop_reason, watcher


@dataclass
class TrainConfig:
    model: str = "tcn"  # tcn | deeplob
    epochs: int = 4
    batch_size: int = 64  # windows (deeplob) or chunks (tcn) per step
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    chunk: int = 256  # tcn: labelled rows per chunk
    chunks_per_step: int = 8  # tcn: chunks per optimizer step (an epoch is len(train) / chunk steps)
    channels: int = 64
    embedding_dim: int = 32
    dropout: float = 0.0  # tcn, tlob
    tcn_blocks: int = 5  # tcn: dilations 1, 2, ..., 2^(blocks - 1); receptive field 1 + 3 (2^blocks - 1) rows
    skip: bool = False  # tcn: logits = logistic regression on the input row, fitted first and frozen, + deep head
    # started at 0 (trader.nn.models); epoch 0 is the regression alone
    device: str = "auto"
    torch_threads: int = 1  # torch's CPU threads (0: torch's default); fixed, so that a seed gives one result
    torch_deterministic: bool = True  # deterministic torch algorithms on the CPU, cudnn's on cuda
    amp: bool = True  # bf16 autocast on CUDA
    max_steps_per_epoch: int = 0  # 0 = a full pass over the training rows
    checkpoint_uri: str | None = None  # folder or s3://bucket/prefix (default <run>/<model>/checkpoints); + /<model>
    keep_checkpoints: int = 3  # the newest checkpoints kept (0: all)
    save_freq: int = 0  # optimizer steps between checkpoints (0: at each epoch's end only)
    spot_metadata_url: str | None = None  # spot notices (default: env TRADER_SPOT_METADATA_URL, else off)
    spot_poll_s: float = 5.0
    dist_backend: str = "auto"  # under torchrun: auto (nccl on cuda, gloo on the CPU), gloo, nccl
    # Model selection (issue 14): the epoch kept is the best on the validation rows by "val_loss" or by
    # "val_f1" (macro-F1 averaged over the horizons, the score the reports rank by); training stops after
    # `patience` epochs without a better one (0: never early).
    select: str = "val_loss"
    patience: int = 0
    lr_schedule: str = "constant"  # constant | cosine (to 0 over epochs x steps; Loshchilov, Hutter 2017)
    # Every training dataset weighs the same: in the rows drawn for training (with replacement, each row
    # with probability 1 / (datasets x its dataset's rows)) and in the validation score (macro-F1 per
    # dataset, averaged). Pooled, two 60,000-row datasets outweigh eight of 3,000-6,500 rows and the epoch
    # kept is the one best on them; a held-out dataset is scored alone (benchmarks/README.md, encoder).
    balance: bool = False
    extra: dict = field(default_factory=dict)


SELECT = ("val_loss", "val_f1")
LR_SCHEDULES = ("constant", "cosine")


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimizer step `step` (from 0) of `total_steps`."""
    if cfg.lr_schedule == "cosine":
        return cfg.learning_rate * 0.5 * (1.0 + np.cos(np.pi * min(step, total_steps) / max(total_steps, 1)))
    return cfg.learning_rate


def model_options(cfg: TrainConfig) -> dict:
    return {"channels": cfg.channels, "embedding_dim": cfg.embedding_dim, "dropout": cfg.dropout,
            "tcn_blocks": cfg.tcn_blocks, "skip": cfg.skip}


class _Stack:
    """All series' normalized rows in one array, with offsets, on the training device."""

    def __init__(self, data: EncoderData, device):
        self.offsets = np.cumsum([0] + [len(s.features) for s in data.series])
        self.x = torch.tensor(np.concatenate([data.normalized(i) for i in range(len(data.series))]), device=device)
        self.y = torch.tensor(np.concatenate(data.labels), device=device)

    def rows(self, data: EncoderData, split: str, series=None) -> np.ndarray:
        return np.concatenate([self.offsets[i] + t for i, t in data.rows(split) if series is None or i in series])


def _windows(stack: _Stack, ends: torch.Tensor, window: int) -> torch.Tensor:
    idx = ends[:, None] + torch.arange(-window + 1, 1, device=ends.device)
    return stack.x[idx]


def _export(model_dir: Path, model, cfg: TrainConfig, data: EncoderData) -> None:
    """weights.safetensors (+ normalization) and config.json: what `trader embed` and load_encoder read."""
    from safetensors.torch import save_file

    model_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if data.mean is not None:  # norm "train"
        tensors["_norm.mean"] = torch.tensor(data.mean)
        tensors["_norm.std"] = torch.tensor(data.std)
    tmp = model_dir / ".weights.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, model_dir / "weights.safetensors")
    config = {"train": asdict(cfg), "horizons": list(data.horizons), "window": data.window,
              "levels": data.series[0].levels, "in_features": int(data.series[0].features.shape[1]),
              "inputs": data.inputs, "norm": data.norm, "alphas": data.alphas,
              "interval_ms": data.series[0].interval_ms}
    (model_dir / "config.json").write_text(json.dumps(config, indent=2))


def checkpoint_uri(cfg: TrainConfig, run_dir: Path) -> str:
    """Where a model's training checkpoints go: --checkpoint-uri/<model>, else <run>/<model>/checkpoints."""
    if cfg.checkpoint_uri:
        return f"{str(cfg.checkpoint_uri).rstrip('/')}/{cfg.model}"
    return str(Path(run_dir) / cfg.model / "checkpoints")


def load_encoder(model_dir: str | Path, device="cpu"):
    """(model, config, mean, std) from a checkpoint folder written by train_model."""
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing; expected a checkpoint folder of trader train-encoder")
    config = json.loads(cfg_path.read_text())
    t = config["train"]
    model = build_model(t["model"], config["in_features"], config["levels"], len(config["horizons"]),
                        window=config["window"], **model_options(TrainConfig(**t)))
    tensors = load_file(str(model_dir / "weights.safetensors"))
    mean, std = (tensors.pop(k).numpy() if k in tensors else None for k in ("_norm.mean", "_norm.std"))
    model.load_state_dict(tensors)
    return model.to(device).eval(), config, mean, std


def train_model(data: EncoderData, cfg: TrainConfig, run_dir: Path, *, resume: bool = False, writer=None,
                progress: bool = True) -> tuple[nn.Module, dict]:
    """Train one encoder on the train split, keeping the epoch best on the validation rows. `resume`:
    continue from the latest checkpoint of checkpoint_uri(cfg, run_dir) when there is one. Under torchrun
    one rank of a data-parallel run (the process group is started here unless it already is)."""
    dist = distributed.init(cfg.device, cfg.dist_backend)
    # on an error the group is left as it is: the other ranks may be in the middle of a collective
    out = _train_model(data, cfg, Path(run_dir), dist, resume=resume, writer=writer, progress=progress)
    dist.close()
    return out


def _train_model(data: EncoderData, cfg: TrainConfig, run_dir: Path, dist, *, resume: bool, writer,
                 progress: bool) -> tuple[nn.Module, dict]:
    from tqdm import tqdm

    if cfg.select not in SELECT:
        raise ValueError(f"select: expected one of {', '.join(SELECT)}, got {cfg.select!r}")
    if cfg.model == "deeplob" and not data.inputs.startswith("book"):
        raise ValueError(f"model deeplob reads the book levels (the first columns of 'book' inputs); the data's "
                         f"inputs are {data.inputs!r}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr schedule: expected one of {', '.join(LR_SCHEDULES)}, got {cfg.lr_schedule!r}")
    device = setup_torch(cfg.seed, cfg.device, cfg.torch_threads, cfg.torch_deterministic, dist)
    stack = _Stack(data, device)
    H = len(data.horizons)
    model = build_model(cfg.model, stack.x.shape[1], data.series[0].levels, H, window=data.window,
                        **model_options(cfg))
    model.to(device)
    skip = getattr(model, "skip", None)
    if skip is not None:
        skip.requires_grad_(False)  # fitted below (or restored by a resume), never trained by the optimizer
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                            weight_decay=cfg.weight_decay)
    model_dir = run_dir / cfg.model
    uri = checkpoint_uri(cfg, run_dir)
    W, rank = dist.world_size, dist.rank
    start_epoch, start_step, global_step = 0, 0, 0
    partial = {"seconds": 0.0, "seen": 0}  # of an epoch cut short by an interruption
    meta = {"train_seconds": 0.0, "samples": 0, "best_val_loss": float("inf"), "best_epoch": None,
            "best_score": None, "select": cfg.select, "history": []}
    _, ckpt = resume_point("latest" if resume else None, uri, "model", cfg.model, dist)
    if ckpt is not None:
        md = ckpt.metadata
        ckpt.load_into(modules={"model": model})
        opt.load_state_dict(ckpt.state["trainer"]["optimizer"])
        set_rng_state(ckpt.state["ranks"][rank]["rng"])
        start_epoch, start_step, global_step = int(md["epoch"]), int(md["step_in_epoch"]), int(md["global_step"])
        partial, meta = md["partial"], {"best_epoch": None, "best_score": None, "select": cfg.select} | md["meta"]
        if dist.is_main:
            print(f"{cfg.model}: resumed from {ckpt.ref.uri} (epoch {start_epoch + 1}, step {start_step})")
    store = open_store(uri, cfg.keep_checkpoints) if dist.is_main else None
    ddp = dist.wrap(model)  # DDP: gradients averaged over the ranks
    train_rows = stack.rows(data, "train")
    val_rows = stack.rows(data, "val")
    Wn = data.window
    amp = cfg.amp and device.type == "cuda"
    rf = getattr(model, "receptive_field", Wn)
    train_set = torch.zeros(len(stack.x), dtype=torch.bool, device=device)
    train_set[torch.as_tensor(train_rows, device=device)] = True
    per_step = cfg.chunks_per_step if cfg.model == "tcn" else cfg.batch_size  # chunks or windows a rank takes
    # tcn chunks: rf - 1 rows of context, then `chunk` rows whose labels are trained on
    n_steps = max(1, len(train_rows) // ((cfg.chunk if cfg.model == "tcn" else cfg.batch_size) * W))
    if cfg.max_steps_per_epoch:
        n_steps = min(n_steps, cfg.max_steps_per_epoch)

    def save(epoch: int, step_in_epoch: int, part: dict, reason: str | None = None) -> str:
        """Rank 0 writes the model, the optimizer, every rank's RNG states and where training is."""
        return save_checkpoint(store, global_step, dist, modules={"model": model},
                               trainer={"optimizer": opt.state_dict()}, rank_state={"rng": rng_state()},
                               metadata={"kind": "encoder", "model": cfg.model, "config": asdict(cfg), "epoch": epoch,
                                         "step_in_epoch": step_in_epoch, "global_step": global_step,
                                         "partial": part, "meta": meta, "reason": reason})

    def judge(epoch: int, elapsed: float, seen: int) -> None:
        """Validate the model after `epoch` epochs; keep it (best/) if it is the best so far."""
        val_loss, val_f1 = dist.run_on_main(_validate, model, stack, data, val_rows, cfg, device)
        meta["history"].append({"epoch": epoch, "val_loss": val_loss, "val_macro_f1": val_f1,
                                "seconds": elapsed, "samples_per_s": seen / max(elapsed, 1e-9)})
        if writer is not None:
            writer.add_scalar(f"{cfg.model}/loss_val", val_loss, epoch)
            writer.add_scalar(f"{cfg.model}/macro_f1_val", float(np.mean(val_f1)), epoch)
            writer.add_scalar(f"{cfg.model}/samples_per_s", seen / max(elapsed, 1e-9), epoch)
        score = -val_loss if cfg.select == "val_loss" else float(np.mean(val_f1))
        better = meta["best_score"] is None or score > meta["best_score"]
        if better:
            meta["best_score"], meta["best_epoch"] = score, epoch
        if dist.is_main:
            if better:
                _export(model_dir / "best", model, cfg, data)
            _export(model_dir, model, cfg, data)
        meta["best_val_loss"] = min(meta["best_val_loss"], val_loss)

    if skip is not None and ckpt is None:
        t0 = time.perf_counter()
        fit_skip(skip, stack, train_rows, len(data.horizons), cfg.seed)
        judge(0, time.perf_counter() - t0, 0)  # epoch 0: the logistic regression alone

    interrupted, checkpoint = None, None
    with watcher(cfg.spot_metadata_url, cfg.spot_poll_s, dist) as watch:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            # every rank draws the same permutation; batch b of the epoch goes to rank b % W
            perm = epoch_order(train_rows, stack.offsets, cfg, epoch)
            first = start_step if epoch == start_epoch else 0
            done = partial if epoch == start_epoch else {"seconds": 0.0, "seen": 0}
            t0 = time.perf_counter()
            seen = int(done["seen"])
            bar = tqdm(range(first, n_steps), desc=f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}",
                       disable=not (progress and dist.is_main), leave=False)
            for step in bar:
                sel = perm[(np.arange(per_step) + (step * W + rank) * per_step) % len(perm)]
                if cfg.model == "tcn":
                    # a chunk's end is a random training row; only positions that are training rows count
                    ends = torch.as_tensor(train_rows[sel], device=device)
                    length = rf - 1 + cfg.chunk
                    idx = ends[:, None] + torch.arange(-length + 1, 1, device=device)
                    valid_idx = idx.clamp(min=0)
                    x = stack.x[valid_idx]
                    y = stack.y[valid_idx]
                    mask = train_set[valid_idx] & (idx >= 0) & (y >= 0).all(-1)
                    mask[:, : rf - 1] = False
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = ddp(x)
                    loss = nn.functional.cross_entropy(logits[mask].float().reshape(-1, 3), y[mask].reshape(-1))
                    seen += int(mask.sum())
                else:
                    ends = torch.as_tensor(train_rows[sel], device=device)
                    x = _windows(stack, ends, Wn)
                    y = stack.y[ends]
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = ddp(x)
                    loss = nn.functional.cross_entropy(logits.float().reshape(-1, 3), y.reshape(-1))
                    seen += len(ends)
                if cfg.lr_schedule != "constant":
                    for g in opt.param_groups:
                        g["lr"] = learning_rate(cfg, global_step, cfg.epochs * n_steps)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                global_step += 1
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                if writer is not None:
                    writer.add_scalar(f"{cfg.model}/loss_train", loss.item(), epoch * n_steps + step)
                part = {"seconds": done["seconds"] + time.perf_counter() - t0, "seen": seen}
                # ---- SIGTERM, SIGINT, spot notice: every rank stops here, after a final save ----
                interrupted = stop_reason(watch, dist)
                if interrupted is not None:
                    if dist.is_main:
                        print(f"\n{cfg.model}: {interrupted}: stopping at step {global_step}, after a final "
                              "checkpoint", flush=True)
                    checkpoint = save(epoch, step + 1, part, reason=interrupted)
                    break
                if cfg.save_freq and global_step % cfg.save_freq == 0 and step + 1 < n_steps:
                    checkpoint = save(epoch, step + 1, part)
            if interrupted:
                break
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = done["seconds"] + time.perf_counter() - t0
            seen = int(dist.sum([seen])[0]) if dist.enabled else seen  # every rank's samples
            meta["train_seconds"] += elapsed
            meta["samples"] += seen
            if dist.enabled:
                dist.broadcast_buffers(model)  # BatchNorm statistics: rank 0's everywhere
            judge(epoch + 1, elapsed, seen)
            checkpoint = save(epoch + 1, 0, {"seconds": 0.0, "seen": 0})
            if cfg.patience and epoch + 1 - meta["best_epoch"] >= cfg.patience:
                if dist.is_main and progress:
                    print(f"{cfg.model}: no better {cfg.select} for {cfg.patience} epochs: stopping after epoch "
                          f"{epoch + 1}, keeping epoch {meta['best_epoch']}", flush=True)
                break
    in_sync = dist.check_sync({"model": model}, model_dir / "ddp_sync.json", global_step=global_step)
    meta.update(interrupted=interrupted, checkpoint=checkpoint, checkpoint_store=uri, global_step=global_step,
                world_size=W, rank=rank, ranks_in_sync=in_sync,
                state_sha256=distributed.state_digest({"model": model}))  # the last weights, not the best
    best = model_dir / "best"
    if not interrupted and dist.is_main and best.is_dir():
        model, _, _, _ = load_encoder(best, device)
    meta["params"] = sum(p.numel() for p in model.parameters())
    return model, meta


def epoch_order(rows: np.ndarray, offsets: np.ndarray, cfg: TrainConfig, epoch: int) -> np.ndarray:
    """Positions in `rows` (global row indices) in the order epoch `epoch` trains on them: a permutation,
    or with cfg.balance and rows of several series as many draws with replacement, every series
    (offsets: where each starts) drawn equally often in expectation."""
    rng = np.random.default_rng([cfg.seed, epoch])
    of_series = np.searchsorted(offsets, rows, side="right") - 1
    if not cfg.balance or len(np.unique(of_series)) < 2:
        return rng.permutation(len(rows))
    p = 1.0 / np.bincount(of_series)[of_series]
    return rng.choice(len(rows), len(rows), p=p / p.sum())


def fit_skip(skip: nn.Conv1d, stack: _Stack, rows: np.ndarray, horizons: int, seed: int) -> None:
    """The skip path of a TCNEncoder set to the logistic regression of each horizon's labels on the
    normalized input rows `rows` (trader.nn.baselines.logistic_weights)."""
    x = stack.x[torch.as_tensor(rows, device=stack.x.device)].double().cpu().numpy()
    y = stack.y[torch.as_tensor(rows, device=stack.y.device)].cpu().numpy()
    for h in range(horizons):
        w, b = logistic_weights(x, y[:, h], seed=seed)
        with torch.no_grad():
            skip.weight[3 * h:3 * h + 3, :, 0] = torch.tensor(w.T, dtype=skip.weight.dtype, device=skip.weight.device)
            skip.bias[3 * h:3 * h + 3] = torch.tensor(b, dtype=skip.bias.dtype, device=skip.bias.device)


@torch.no_grad()
def predict(model, stack: _Stack, data: EncoderData, rows: np.ndarray, cfg: TrainConfig, device) -> torch.Tensor:
    """Logits [n, H, 3] for global row indices `rows`."""
    model.eval()
    if cfg.model == "tcn":
        out = torch.empty(len(rows), len(data.horizons), 3, device=device)
        rf = model.receptive_field
        # Causal model: run each series in overlapping chunks, keep the logits of the rows asked for.
        rows = np.asarray(rows)
        if np.any(np.diff(rows) < 0):
            raise ValueError("predict: rows must be in ascending order")
        for i in range(len(data.series)):
            a, b = int(stack.offsets[i]), int(stack.offsets[i + 1])
            for s in range(a, b, 8192):
                e = min(b, s + 8192)
                j0, j1 = np.searchsorted(rows, s), np.searchsorted(rows, e)
                if j0 == j1:
                    continue
                lo = max(a, s - (rf - 1))
                logits = model(stack.x[lo:e][None])[0].float()
                out[j0:j1] = logits[torch.as_tensor(rows[j0:j1] - lo, device=device)]
        return out
    outs = []
    for s in range(0, len(rows), 512):
        ends = torch.as_tensor(rows[s:s + 512], device=device)
        outs.append(model(_windows(stack, ends, data.window))[:, 0].float())
    return torch.cat(outs) if outs else torch.empty(0, len(data.horizons), 3, device=device)


def _validate(model, stack, data, rows, cfg, device) -> tuple[float, list[float]]:
    """(cross-entropy, macro-F1 per horizon) on global rows `rows`; with cfg.balance the mean over the
    series of each series' loss and macro-F1."""
    if len(rows) == 0:
        return float("nan"), [float("nan")] * len(data.horizons)
    logits = predict(model, stack, data, rows, cfg, device)
    y = stack.y[torch.as_tensor(rows, device=device)]
    parts = [np.arange(len(rows))]
    if cfg.balance:
        of_series = np.searchsorted(stack.offsets, rows, side="right") - 1
        parts = [np.flatnonzero(of_series == i) for i in np.unique(of_series)]
    pred, y_np = logits.argmax(-1).cpu().numpy(), y.cpu().numpy()
    loss = np.mean([float(nn.functional.cross_entropy(logits[torch.as_tensor(j, device=device)].reshape(-1, 3),
                                                      y[torch.as_tensor(j, device=device)].reshape(-1)))
                    for j in parts])
    f1 = [np.mean([scores(y_np[j, h], pred[j, h])["macro_f1"] for j in parts]) for h in range(len(data.horizons))]
    return float(loss), [float(x) for x in f1]


def evaluate(model, data: EncoderData, cfg: TrainConfig, split: str = "test", series=None) -> list[dict]:
    """Scores per horizon on the rows of `split`, of the series indices `series` only if given."""
    device = next(model.parameters()).device
    stack = _Stack(data, device)
    rows = stack.rows(data, split, series)
    pred = predict(model, stack, data, rows, cfg, device).argmax(-1).cpu().numpy()
    y = stack.y[torch.as_tensor(rows, device=device)].cpu().numpy()
    return [scores(y[:, h], pred[:, h]) for h in range(len(data.horizons))]


def baseline_scores(data: EncoderData, split: str = "test", series=None) -> dict:
    """Majority class and OFI logistic regression, fitted on the train split, scored on the rows of
    `split` (of the series indices `series` only if given)."""
    ofi = [ofi_features(s.book) for s in data.series]
    out = {"majority": [], "logreg_ofi": []}
    tr = data.rows("train")
    te = [(i, t) for i, t in data.rows(split) if series is None or i in series]
    x_tr = np.concatenate([ofi[i][t] for i, t in tr])
    x_te = np.concatenate([ofi[i][t] for i, t in te])
    for h in range(len(data.horizons)):
        y_tr = np.concatenate([data.labels[i][t, h] for i, t in tr])
        y_te = np.concatenate([data.labels[i][t, h] for i, t in te])
        out["majority"].append(scores(y_te, majority_predict(y_tr, len(y_te))))
        out["logreg_ofi"].append(scores(y_te, logistic_regression(x_tr, y_tr, x_te)))
    return out
