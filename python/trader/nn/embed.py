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
    """Embeddings of every row; rows before a full window see the first row repeated (no future data)."""
    model.eval()
    T = len(features)
    if window > T:
        raise ValueError(f"window: {window} rows is longer than the data ({T} rows)")
    if not np.isfinite(features).all():
        r, c = np.argwhere(~np.isfinite(features))[0]
        raise ValueError(f"features: non-finite value at row {r}, column {c}")
    x = torch.tensor(np.concatenate([np.repeat(features[:1], window - 1, axis=0), features]), dtype=torch.float32)
    if hasattr(model, "embed_sequence"):  # causal: one pass per chunk
        rf = model.receptive_field
        out = []
        for s in range(window - 1, len(x), chunk):
            lo = s - (rf - 1) if s >= rf - 1 else 0
            e = model.embed_sequence(x[lo:s + chunk][None])[0]
            out.append(e[s - lo:])
        return torch.cat(out).numpy()
    out = []
    idx = torch.arange(-window + 1, 1)
    for s in range(0, T, 512):
        ends = torch.arange(s, min(T, s + 512)) + window - 1
        out.append(model.embed(x[ends[:, None] + idx]))
    return torch.cat(out).numpy()


def embed_dataset(checkpoint, data_dir=None, out=None) -> Path:
    from trader.data.dataset import sample_path
    from trader.sim.env import load_market

    model, config, mean, std = load_encoder(checkpoint)
    run_data = json.loads((Path(checkpoint).parent / "data.json").read_text()) if (Path(checkpoint).parent / "data.json").is_file() else {}
    interval_ms = run_data.get("interval_ms", 100.0)
    depth = config["levels"]
    market = load_market(data_dir, depth=depth, interval_ms=interval_ms)
    feats = ((market.features - mean) / std).astype(np.float32)
    emb = embed_rows(model, feats, config["window"]).astype(np.float32)
    target = Path(out) if out else Path(data_dir if data_dir else sample_path()) / "embeddings.npy"
    np.save(target, emb)
    target.with_suffix(".json").write_text(json.dumps({
        "checkpoint": str(checkpoint), "model": config["train"]["model"], "rows": int(len(emb)),
        "dim": int(emb.shape[1]), "interval_ms": interval_ms, "depth": depth,
        "first_ts_ns": int(market.ts[0]), "last_ts_ns": int(market.ts[-1])}, indent=2))
    return target
