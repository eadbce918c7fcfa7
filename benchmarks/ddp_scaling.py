"""Data-parallel scaling of training: PPO env steps/s and encoder samples/s at several world sizes.

    PYTHONPATH=python python3 benchmarks/ddp_scaling.py                          # CPU, gloo, world sizes 1,2
    PYTHONPATH=python python3 benchmarks/ddp_scaling.py --device cuda --backend nccl --world-sizes 1,2,4,8

Each (workload, world size) runs under `torchrun --nproc-per-node W` (one process per GPU on cuda), through
the same code as `trader train --nproc W` / `trader train-encoder --nproc W` (trader.rl.distributed):
world size 1 is a plain single process (no process group), the baseline.

Weak scaling: the work per rank is fixed, so ideal throughput grows with W.
- ppo: the trader env on the bundled sample, --num-envs envs per rank, 128 steps per env per rollout,
  --iterations rollouts + updates per rank (the learner's defaults otherwise: 64x64 MLPs, 4 epochs x 4
  minibatches). env steps/s = env steps of all ranks / seconds, measured from the end of the first
  iteration to the end of the last (start-up, the first iteration and the final checkpoint left out).
- encoder: `train_model` on the bundled sample (tcn by default: chunks of 256 labelled rows, 8 chunks per
  step per rank), --encoder-steps optimizer steps per rank per epoch, 2 epochs; samples/s = labelled rows
  of all ranks / seconds of the second epoch (validation left out).
efficiency(W) = throughput(W) / (W x throughput(1)).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))


# ---------------------------------------------------------------------------------------------------
# worker: one rank (under torchrun)
# ---------------------------------------------------------------------------------------------------


def worker(ns: argparse.Namespace) -> None:
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    with tempfile.TemporaryDirectory() as tmp:
        if ns.worker == "ppo":
            from trader.rl import ppo

            num_steps = 128
            args = ppo.Args(env_id="trader", num_envs=ns.num_envs, num_steps=num_steps, num_threads=ns.env_threads,
                            total_timesteps=ns.iterations * ns.num_envs * num_steps * world, track=False,
                            progress_bar=False, cuda=ns.device != "cpu", dist_backend=ns.backend, runs_dir=tmp,
                            seed=1)
            result = ppo.train(args)
            h = result["history"]
            rate = (h[-1]["step"] - h[0]["step"]) / (h[-1]["seconds"] - h[0]["seconds"])
            out = {"throughput": rate, "unit": "env steps/s", "steps": result["global_step"],
                   "in_sync": result["ranks_in_sync"], "per_rank": f"{ns.num_envs} envs"}
        else:
            from trader.nn.data import build, load_series
            from trader.nn.train import TrainConfig, train_model

            data = build([load_series(None)], horizons=(10, 20, 50, 100), window=100)
            cfg = TrainConfig(model=ns.encoder, epochs=2, max_steps_per_epoch=ns.encoder_steps,
                              device="auto" if ns.device != "cpu" else "cpu", dist_backend=ns.backend, seed=0)
            _, meta = train_model(data, cfg, Path(tmp), progress=False)
            last = meta["history"][-1]
            out = {"throughput": last["samples_per_s"], "unit": "samples/s", "steps": meta["global_step"],
                   "in_sync": meta["ranks_in_sync"],
                   "per_rank": f"{cfg.chunks_per_step} x {cfg.chunk} rows" if ns.encoder == "tcn"
                   else f"{cfg.batch_size} windows"}
    if rank == 0:
        Path(ns.out).write_text(json.dumps(out))


# ---------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------


def run(workload: str, world: int, ns: argparse.Namespace) -> dict:
    from trader.rl import distributed

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        argv = [str(Path(__file__).resolve()), "--worker", workload, "--out", str(out), "--device", ns.device,
                "--backend", ns.backend, "--num-envs", str(ns.num_envs), "--env-threads", str(ns.env_threads),
                "--iterations", str(ns.iterations), "--encoder", ns.encoder, "--encoder-steps", str(ns.encoder_steps)]
        cmd = distributed.torchrun_command(world, argv, module=False)
        t0 = time.time()
        proc = subprocess.run(cmd, env=distributed.launch_env(), capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"{workload} world size {world} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        result = json.loads(out.read_text())
    result.update(workload=workload, world=world, wall_s=time.time() - t0)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world-sizes", default="1,2", help="comma-separated process counts")
    p.add_argument("--workloads", default="ppo,encoder", help="ppo, encoder or both")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="cuda: one GPU per process")
    p.add_argument("--backend", default="auto", choices=["auto", "gloo", "nccl"])
    p.add_argument("--num-envs", type=int, default=8, help="ppo: envs per rank")
    p.add_argument("--env-threads", type=int, default=1, help="ppo: C++ pool threads per rank")
    p.add_argument("--iterations", type=int, default=12, help="ppo: rollouts + updates per rank")
    p.add_argument("--encoder", default="tcn", choices=["tcn", "deeplob"])
    p.add_argument("--encoder-steps", type=int, default=30, help="encoder: optimizer steps per rank per epoch")
    p.add_argument("--repeat", type=int, default=1, help="runs per cell (the median is reported)")
    p.add_argument("--json", default=None, help="also write every result here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.worker:
        return worker(ns)

    import statistics

    import torch

    worlds = [int(w) for w in ns.world_sizes.split(",")]
    workloads = [w.strip() for w in ns.workloads.split(",") if w.strip()]
    runs: dict[tuple[str, int], list[dict]] = {(w, n): [] for w in workloads for n in worlds}
    for i in range(ns.repeat):  # rounds: every cell once per round, so load changes hit all cells alike
        for workload in workloads:
            for world in worlds:
                r = run(workload, world, ns)
                runs[workload, world].append(r)
                print(f"round {i + 1}: {workload} W={world}: {r['throughput']:,.0f} {r['unit']}", file=sys.stderr,
                      flush=True)
    rows = []
    for workload in workloads:
        base = None
        for world in worlds:
            cell = runs[workload, world]
            r = dict(cell[0], throughput=statistics.median(x["throughput"] for x in cell),
                     runs=[x["throughput"] for x in cell])
            base = r["throughput"] if world == 1 else base
            r["speedup"] = r["throughput"] / base if base else float("nan")
            r["efficiency"] = r["speedup"] / world if base else float("nan")
            rows.append(r)

    dev = ns.device if ns.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    backend = ns.backend if ns.backend != "auto" else ("nccl" if dev == "cuda" else "gloo")
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" and torch.cuda.is_available() else None
    print(f"\ntorch {torch.__version__}, {backend} on {gpu or 'CPU'}, {os.cpu_count()} CPUs, "
          f"{platform.python_version()}; one process per {'GPU' if dev == 'cuda' else 'rank'}")
    print("\n| workload | per rank | world size | throughput | unit | speedup | scaling efficiency | ranks in sync |")
    print("|---|---|---:|---:|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['workload']}{' (' + ns.encoder + ')' if r['workload'] == 'encoder' else ''} | {r['per_rank']} | "
              f"{r['world']} | {r['throughput']:,.0f} | {r['unit']} | {r['speedup']:.2f}x | {r['efficiency'] * 100:.0f} % | "
              f"{r['in_sync']} |")
    if ns.json:
        Path(ns.json).write_text(json.dumps({"device": dev, "backend": backend, "gpu": gpu, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
