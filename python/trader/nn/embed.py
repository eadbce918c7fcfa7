"""Embed every sampled row of a dataset once with a trained encoder (no look-ahead: row t sees rows <= t).

The result, [T, D] float32 with one row per row of `trader.sim.load_market(data, depth, interval_ms)`:
- `embed_dataset` (`trader embed`) stores it beside the dataset with a JSON sidecar (checkpoint,
  sampling, shape); pass it to the env as `trader.sim.make(data, features=<path>)`;
- `agent_features` (`trader train --encoder RUN/MODEL`, and backtests and live runs of that agent
  through trader.rl.policy) caches it beside the encoder, in MODEL/embeddings/, under the dataset's
  name and the sha256 of the encoder's files (`checkpoint_sha256`), and checks that the encoder is
  the one the agent recorded and that its rows are the env's rows (same time grid).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from trader.nn.train import load_encoder


@torch.no_grad()
def embed_rows(model, features: np.ndarray, window: int, chunk: int = 8192) -> np.ndarray:
    """Embeddings of every row. A causal model (TCN) sees the series from its start, zero-padded as in
    training, which is what trader.nn.stream.TCNStream gives row by row in live trading; a windowed
    model sees its last `window` rows, the first row repeated before a full window (no future data)."""
    model.eval()
    T = len(features)
    if window > T:
        raise ValueError(f"window: {window} rows is longer than the data ({T} rows)")
    if not np.isfinite(features).all():
        r, c = np.argwhere(~np.isfinite(features))[0]
        raise ValueError(f"features: non-finite value at row {r}, column {c}")
    if hasattr(model, "embed_sequence"):  # causal: one pass per chunk, with the receptive field before it
        x = torch.tensor(features, dtype=torch.float32)
        rf = model.receptive_field
        out = []
        for s in range(0, T, chunk):
            lo = max(0, s - (rf - 1))
            out.append(model.embed_sequence(x[lo:s + chunk][None])[0, s - lo:])
        return torch.cat(out).numpy()
    x = torch.tensor(np.concatenate([np.repeat(features[:1], window - 1, axis=0), features]), dtype=torch.float32)
    out = []
    idx = torch.arange(-window + 1, 1)
    for s in range(0, T, 512):
        ends = torch.arange(s, min(T, s + 512)) + window - 1
        out.append(model.embed(x[ends[:, None] + idx]))
    return torch.cat(out).numpy()


def checkpoint_sha256(model_dir) -> str:
    """sha256 of an encoder folder's config.json and weights.safetensors: which encoder it is."""
    h = hashlib.sha256()
    for name in ("config.json", "weights.safetensors"):
        path = Path(model_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; expected an encoder folder of trader train-encoder "
                                    "(RUN/MODEL or RUN/MODEL/best)")
        h.update(path.read_bytes())
    return h.hexdigest()


def _run_data(model_dir) -> dict | None:
    """The data.json of the train-encoder run an encoder folder (RUN/MODEL, RUN/MODEL/best, or a seed's or
    fold's under RUN) belongs to; None if none is found."""
    for parent in list(Path(model_dir).resolve().parents)[:3]:
        if (parent / "data.json").is_file():
            return json.loads((parent / "data.json").read_text())
    return None


def encoder_interval_ms(model_dir, config: dict) -> float:
    """The row spacing the encoder was trained on: its config, or (older runs) the run's data.json."""
    if "interval_ms" in config:
        return float(config["interval_ms"])
    return float((_run_data(model_dir) or {}).get("interval_ms", 100.0))


def encoder_training_data(model_dir) -> list[str | None]:
    """The dataset folders the encoder's train-encoder run read (None: the bundled sample), from its data.json;
    what trader evaluate checks against its test blocks. ValueError if the run's data.json is gone."""
    run = _run_data(model_dir)
    if run is None:
        raise ValueError(f"encoder {model_dir}: no data.json of its trader train-encoder run in the folders "
                         "above it, so what it trained on is unknown; keep the encoder inside its run folder")
    return [None if d == "<bundled sample>" else d for d in run["data"]]


def _embed(model_dir, data_dir, depth: int | None = None):
    """(embeddings [T, D], series, config): the dataset sampled on the encoder's grid and embedded."""
    from trader.nn.data import load_series, normalizer

    model, config, mean, std = load_encoder(model_dir)
    # checkpoints from before issue 14 read book_features standardized with the training rows' statistics
    series = load_series(data_dir, depth=depth or config["levels"], interval_ms=encoder_interval_ms(model_dir, config),
                         inputs=config.get("inputs", "book"))
    feats = normalizer(config.get("norm", {"kind": "train"}), mean, std)(series.features)
    return embed_rows(model, feats, config["window"]).astype(np.float32), series, config


def agent_features(model_dir, data_dir, *, interval_ms: float, rows: int, expect_sha256: str | None = None):
    """(embeddings [rows, D], sha256) for an agent's env: `interval_ms` and `rows` are the env's grid
    and row count; `expect_sha256` the encoder the agent recorded (None: a new run). ValueError on a
    different encoder or a sampling mismatch."""
    from trader.data.dataset import load_dataset

    sha = checkpoint_sha256(model_dir)
    if expect_sha256 is not None and sha != expect_sha256:
        raise ValueError(f"encoder {model_dir}: its files changed since the agent was trained (sha256 {sha[:12]}, "
                         f"the agent recorded {expect_sha256[:12]}); use the encoder it was trained with")
    config = json.loads((Path(model_dir) / "config.json").read_text())
    trained_ms = encoder_interval_ms(model_dir, config)
    if abs(trained_ms - interval_ms) > 1e-9:
        raise ValueError(f"encoder {model_dir}: trained on rows every {trained_ms:g} ms; the trader env samples "
                         f"every {interval_ms:g} ms (retrain the encoder with --interval-ms {interval_ms:g})")
    ds = load_dataset(data_dir)
    key = hashlib.sha256(json.dumps(ds.meta, sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(model_dir) / "embeddings" / f"{ds.path.name}__{key}__{sha[:16]}.npy"
    if cache.is_file():
        emb = np.load(cache)
    else:
        emb, _series, _config = _embed(model_dir, data_dir)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, cache)
    if len(emb) != rows:
        raise ValueError(f"encoder {model_dir}: {len(emb)} embedded rows of {ds.path}, but the env has {rows} rows "
                         "(a different clock or time grid)")
    return emb, sha


def embed_dataset(checkpoint, data_dir=None, out=None) -> Path:
    from trader.data.dataset import sample_path

    emb, series, config = _embed(checkpoint, data_dir)
    target = Path(out) if out else Path(data_dir if data_dir else sample_path()) / "embeddings.npy"
    np.save(target, emb)
    target.with_suffix(".json").write_text(json.dumps({
        "checkpoint": str(checkpoint), "model": config["train"]["model"], "rows": int(len(emb)),
        "dim": int(emb.shape[1]), "interval_ms": series.interval_ms, "depth": series.levels,
        "first_ts_ns": int(series.ts[0]), "last_ts_ns": int(series.ts[-1])}, indent=2))
    return target
