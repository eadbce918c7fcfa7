"""Training throughput (labelled samples/s) of the encoders on one device, on real data.

    python benchmarks/encoder_throughput.py --device cpu      # or cuda
Uses the bundled BTCUSDT sample (100 ms rows, 10 levels). A "sample" is one labelled row: DeepLOB
processes a 100-row window per sample; the causal TCN processes a chunk of rows and is trained on
every row of it, so its cost per sample is about one row. Rows: the default TCN on the book columns
(the issue-14 bar: 2.67 M samples/s on an H100), DeepLOB, and the model of the encoder LODO table
(benchmarks/encoder_lodo.py's defaults: TCN of 32 channels with the frozen logistic-regression skip, on
the of+ofi+trend inputs).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from trader.nn.data import build, load_series
from trader.nn.models import build_model
from trader.nn.train import _Stack, _windows
from trader.run.device import pick_device


def measure(kind: str, data, device, batch: int, chunk: int, steps: int, amp: bool, name: str | None = None,
            **model_options) -> dict:
    stack = _Stack(data, device)
    rows = stack.rows(data, "train")
    model = build_model(kind, stack.x.shape[1], data.series[0].levels, len(data.horizons), **model_options).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    rf = getattr(model, "receptive_field", data.window)

    def step():
        ends = torch.as_tensor(rows[rng.integers(0, len(rows), batch)], device=device)
        if kind == "tcn":
            idx = (ends[:, None] + torch.arange(-(rf - 1 + chunk) + 1, 1, device=device)).clamp(min=0)
            x, y, n = stack.x[idx], stack.y[idx][:, rf - 1:], batch * chunk
        else:
            x, y, n = _windows(stack, ends, data.window), stack.y[ends][:, None], batch
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            logits = model(x)
        logits = logits[:, -y.shape[1]:].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), y.clamp(min=0).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return n

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = sum(step() for _ in range(steps))
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"model": name or kind, "device": str(device), "batch": batch, "samples": n, "seconds": dt, "samples_per_s": n / dt,
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--deeplob-batch", type=int, default=64)
    ap.add_argument("--tcn-batch", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    device = pick_device(a.device)
    data = build([load_series(None)], horizons=(10, 20, 50, 100), window=100)
    ours = build([load_series(None, inputs="of+ofi+trend")], horizons=(10, 20, 50, 100), window=100, norm="rolling")
    rows = [measure("tcn", data, device, a.tcn_batch, a.chunk, a.steps, True),
            measure("deeplob", data, device, a.deeplob_batch, a.chunk, a.steps, True),
            measure("tcn", ours, device, a.tcn_batch, a.chunk, a.steps, True, name="tcn+skip", channels=32, skip=True)]
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}")
    print(f"{'model':9} {'params':>8} {'batch':>6} {'samples/s':>12}")
    for r in rows:
        print(f"{r['model']:9} {r['params']:>8} {r['batch']:>6} {r['samples_per_s']:>12.0f}")
    print(f"ratio tcn/deeplob samples/s: {rows[0]['samples_per_s'] / rows[1]['samples_per_s']:.1f}x")


if __name__ == "__main__":
    main()
