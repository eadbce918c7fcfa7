"""Embed every sampled row of a dataset once with a trained encoder (no look-ahead: row t sees rows <= t).

The result, [T, D] float32 with one row per row of `trader.sim.load_market(data, depth, interval_ms)`,
is stored beside the dataset with a JSON sidecar (checkpoint, sampling, shape); pass it to the env as
`trader.sim.make(data, features=<path>)`.
"""

from __future__ import annotations

import json
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


def embed_dataset(checkpoint, data_dir=None, out=None) -> Path:
    from trader.data.dataset import sample_path
    from trader.nn.data import load_series, normalizer

    model, config, mean, std = load_encoder(checkpoint)
    run_data = json.loads((Path(checkpoint).parent / "data.json").read_text()) if (Path(checkpoint).parent / "data.json").is_file() else {}
    interval_ms = run_data.get("interval_ms", 100.0)
    depth = config["levels"]
    # checkpoints from before issue 14 read book_features standardized with the training rows' statistics
    series = load_series(data_dir, depth=depth, interval_ms=interval_ms, inputs=config.get("inputs", "book"))
    feats = normalizer(config.get("norm", {"kind": "train"}), mean, std)(series.features)
    emb = embed_rows(model, feats, config["window"]).astype(np.float32)
    target = Path(out) if out else Path(data_dir if data_dir else sample_path()) / "embeddings.npy"
    np.save(target, emb)
    target.with_suffix(".json").write_text(json.dumps({
        "checkpoint": str(checkpoint), "model": config["train"]["model"], "rows": int(len(emb)),
        "dim": int(emb.shape[1]), "interval_ms": interval_ms, "depth": depth,
        "first_ts_ns": int(series.ts[0]), "last_ts_ns": int(series.ts[-1])}, indent=2))
    return target
