"""End-to-end off-policy training throughput (issue 18): our SAC (trader.rl.sac) against Stable-Baselines3's
SAC on the same env and settings, in the same process, one after the other; and our MADDPG
(trader.rl.maddpg), ours only (Stable-Baselines3 has no multi-agent learner).

    PYTHONPATH=python python3 benchmarks/offpolicy_throughput.py --device cpu          # or cuda / auto
    PYTHONPATH=python python3 benchmarks/offpolicy_throughput.py --device cuda --num-envs 256 4096 \\
        --total-timesteps 1048576 --sb3-timesteps 262144 --num-threads 16 --out offpolicy_throughput.json

Rows, for each --num-envs:
- `sac`: the C++ order-book env on the bundled sample with continuous actions (target position) and
  the learners' default env options; ours with its acting forward as a CUDA graph (`graphs`: the
  default on CUDA) and, with --eager, without (`eager`: --no-cuda-graphs, the same sync-free acting path
  run kernel by kernel), SB3's SAC over the very same pool through ppo_throughput.py's NEXT_STEP -> same-step
  autoreset adapter (one extra pool step per episode end, not counted; see there);
- `maddpg`: the same env with 2 agents sharing each book, discrete moves, ours only.

Settings shared by ours and SB3's SAC (ours: trader.rl.sac.Args defaults): Adam lr 3e-4, buffer 1 M
transitions, batch 256, gamma 0.99, tau 0.005, one gradient step per vector step (SB3: train_freq 1,
gradient_steps 1), targets updated every step, automatic entropy tuning from 0.2 with target -|A|, two 256-unit
ReLU layers for the actor and each critic, --learning-starts env steps of uniform random actions
first, seed 1. Ours updates the actor every second critic step with two actor steps (CleanRL's
TD3-style delay: the same number of actor steps); SB3 updates it every step. MADDPG: trader.rl.maddpg
defaults (update every 100 env steps, batch 1024, 64-unit layers), --learning-starts as SAC's.

Measured: env steps / wall seconds of the whole training call, from before the env is built to after
training returns (ours: train(), which also writes its run folder and final checkpoint and captures its
graph; SB3: make the env + SAC(...) + learn()). Loading the market data is outside. Each learner first
runs one short untimed warm-up. A row that fails (e.g. a CUDA error) is reported with its error and the
other rows still run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from torch import nn

from ppo_throughput import attempt, loadavg, machine_info, make_adapter_class, set_torch_flags

SEED = 1


def env_options(opts) -> dict:
    return dict(env_id="trader", seed=SEED, cuda=opts.device == "cuda", torch_threads=opts.torch_threads,
                num_threads=opts.num_threads, track=False, progress_bar=False)


def run_ours(algo: str, market, num_envs: int, total: int, opts, graphs: bool) -> dict:
    """One training run of our SAC (continuous actions) or MADDPG (2 agents, discrete moves)."""
    from trader.rl import maddpg, sac

    module = sac if algo == "sac" else maddpg
    extra = dict(actions="continuous") if algo == "sac" else dict(num_agents=2)
    with tempfile.TemporaryDirectory() as runs_dir:
        args = module.Args(data=market, num_envs=num_envs, total_timesteps=total, learning_starts=opts.learning_starts,
                           runs_dir=runs_dir, cuda_graphs=graphs, **env_options(opts), **extra)
        set_torch_flags(opts.torch_threads, opts.device)
        with contextlib.redirect_stdout(io.StringIO()):  # its "run folder: ..." lines
            t0 = time.perf_counter()
            result = module.train(args)
            wall = time.perf_counter() - t0
    steps = int(result["global_step"])
    return {"steps": steps, "wall_s": wall, "sps": steps / wall, "loop_sps": float(result["sps"]),
            "episodic_return": float(result["episodic_return"])}


def run_sb3(market, num_envs: int, total: int, opts) -> dict:
    """SB3's SAC on the same pool (built by the same make_env from the same options as ours)."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.utils import safe_mean

    from trader.rl import sac
    from trader.rl.envs import make_env

    ours = sac.Args(data=market, num_envs=num_envs, actions="continuous", **env_options(opts))
    set_torch_flags(opts.torch_threads, opts.device)
    t0 = time.perf_counter()
    env = make_adapter_class()(make_env(ours, num_envs, SEED))
    model = SAC("MlpPolicy", env, learning_rate=ours.learning_rate, buffer_size=ours.buffer_size,
                learning_starts=opts.learning_starts, batch_size=ours.batch_size, tau=ours.tau, gamma=ours.gamma,
                train_freq=1, gradient_steps=ours.gradient_steps, ent_coef=f"auto_{ours.alpha}",
                target_update_interval=1,
                policy_kwargs={"net_arch": list(ours.hidden_sizes), "activation_fn": nn.ReLU}, seed=SEED,
                device=opts.device, verbose=0)
    model.learn(total_timesteps=total, progress_bar=False)
    wall = time.perf_counter() - t0
    steps = int(model.num_timesteps)
    out = {"steps": steps, "wall_s": wall, "sps": steps / wall,
           "loop_sps": steps / max((time.time_ns() - model.start_time) / 1e9, 1e-9),
           "episodic_return": float(safe_mean([e["r"] for e in model.ep_info_buffer])) if model.ep_info_buffer
           else float("nan"), "adapter_extra_pool_steps": env.extra_steps * num_envs}
    env.close()
    return out


def table(rows: list[dict]) -> str:
    lines = ["| learner | impl | num_envs | steps | steps/s | vs SB3 | return |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['algo']} | {r['impl']} | {r['num_envs']} | | error: {r['error'][:80]} | | |")
            continue
        ratio = f"{r['vs_sb3']:.1f}x" if r.get("vs_sb3") else ""
        lines.append(f"| {r['algo']} | {r['impl']} | {r['num_envs']} | {r['steps']:,} | {r['sps']:,.0f} | {ratio} | "
                     f"{r['episodic_return']:.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where the learners put their networks (auto: cuda when there is one)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[16, 64], help="env counts, one set of rows each")
    p.add_argument("--total-timesteps", type=int, default=16_384, help="env steps of each run of ours")
    p.add_argument("--sb3-timesteps", type=int, default=None,
                   help="env steps of each SB3 run (default: --total-timesteps; steps/s are compared)")
    p.add_argument("--learning-starts", type=int, default=4096,
                   help="env steps of random actions before the first update (all learners)")
    p.add_argument("--algos", nargs="+", choices=("sac", "maddpg"), default=["sac", "maddpg"])
    p.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads of every learner")
    p.add_argument("--num-threads", type=int, default=1, help="worker threads of the C++ env pool")
    p.add_argument("--data", default=None, help="trader dataset folder (default: the bundled sample)")
    p.add_argument("--no-sb3", action="store_true", help="ours only")
    p.add_argument("--eager", action="store_true", help="on CUDA also ours without the acting graph (--no-cuda-graphs)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up runs")
    p.add_argument("--out", default=None, help="write everything as JSON to this file")
    opts = p.parse_args(argv)
    if opts.device == "auto":
        opts.device = "cuda" if torch.cuda.is_available() else "cpu"
    if opts.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    warnings.filterwarnings("ignore", message=".*primarily intended to run on the CPU.*")

    from trader.sim import load_market

    market = load_market(opts.data)
    info = machine_info(opts.device)
    info["loadavg_start"] = loadavg()
    print(f"device: {opts.device}" + (f" ({info['gpu']}, CUDA {info['cuda']})" if opts.device == "cuda" else "")
          + f"; CPU: {info['cpu']}, {info['cpu_count']} logical cores; torch {info['torch']}, "
          f"stable-baselines3 {info['stable_baselines3']}; pool threads {opts.num_threads}", flush=True)

    # warm-up, untimed: torch's first-call costs (allocator, kernels, autograd, graph capture)
    warm = opts.learning_starts + 16 * 32  # 32 updates
    for algo in opts.algos if not opts.no_warmup else ():
        attempt(run_ours, algo, market, 16, warm, opts, graphs=opts.device == "cuda")
    if "sac" in opts.algos and not opts.no_sb3 and not opts.no_warmup:
        attempt(run_sb3, market, 16, warm, opts)

    rows = []
    for n in opts.num_envs:
        total = max(opts.total_timesteps // n, 1) * n
        sb3_total = max((opts.sb3_timesteps or opts.total_timesteps) // n, 1) * n
        for algo in opts.algos:
            impls = [("eager", False)]  # the CPU has no graphs
            if opts.device == "cuda":
                impls = [("graphs", True)] + impls if opts.eager else [("graphs", True)]
            runs = [(name, lambda g=g: run_ours(algo, market, n, total, opts, graphs=g)) for name, g in impls]
            if algo == "sac" and not opts.no_sb3:
                runs.append(("sb3", lambda: run_sb3(market, n, sb3_total, opts)))
            block = []
            for impl, run in runs:  # each printed as soon as it is done
                row = {"algo": algo, "impl": impl, "num_envs": n, **attempt(run), "loadavg": loadavg()}
                block.append(row)
                print(f"  {algo} x{n} {impl}: " + (row["error"] if "error" in row else
                      f"{row['steps']:,} steps in {row['wall_s']:.1f} s = {row['sps']:,.0f} steps/s "
                      f"(training loop only {row['loop_sps']:,.0f}), return {row['episodic_return']:.3g}"), flush=True)
            sb3_sps = next((r.get("sps") for r in block if r["impl"] == "sb3"), None)
            for row in block:
                if row["impl"] != "sb3" and sb3_sps and "sps" in row:
                    row["vs_sb3"] = row["sps"] / sb3_sps
            rows.extend(block)
    info["loadavg_end"] = loadavg()
    print()
    print(table(rows))
    if opts.out:
        def finite(x):  # NaN (no episode finished yet) as null: strict JSON
            if isinstance(x, float) and np.isnan(x):
                return None
            return {k: finite(v) for k, v in x.items()} if isinstance(x, dict) else x

        with open(opts.out, "w") as f:
            json.dump({"machine": info, "options": vars(opts), "rows": [finite(r) for r in rows]}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
