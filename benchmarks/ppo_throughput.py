"""End-to-end PPO training throughput: our PPO (trader.rl.ppo) against Stable-Baselines3's PPO, on the
same env and the same settings, in the same process, one after the other.

    PYTHONPATH=python python3 benchmarks/ppo_throughput.py --device cpu            # or cuda / auto
    PYTHONPATH=python python3 benchmarks/ppo_throughput.py --device cuda --total-timesteps 262144 --json

Rows:
- `trader`, for each --num-envs (default 8 and 64): the C++ order-book env on the bundled sample with
  the learners' default env options (horizon 500, fee 1 bps, trade size 0.01, max position 0.1,
  discrete hold/buy/sell, train fraction 0.7). Ours steps a trader.sim.TradingVectorEnv through
  trader.rl.envs.make_env; SB3 steps the same pool, built by the same make_env from the same options,
  through `TraderSB3VecEnv` below.
- `CartPole-v1` (sanity row, --cartpole-num-envs, default 8): ours over gymnasium's SyncVectorEnv
  (gymnasium.make_vec "sync", NEXT_STEP autoreset, RecordEpisodeStatistics), SB3 over its own
  DummyVecEnv (make_vec_env, with Monitor).

Settings shared by both (ours: trader.rl.ppo.Args defaults): rollout 128 steps per env, 4 minibatches
per rollout (minibatch = num_envs * 128 / 4), 4 epochs, learning rate 2.5e-4 annealed linearly to 0,
gamma 0.99, GAE lambda 0.95, clip 0.2, value clipping 0.2, entropy 0.01, value coefficient 0.5,
gradient-norm clip 0.5, advantages normalized per minibatch, Adam eps 1e-5, separate actor and critic
MLPs 64x64 tanh with orthogonal init (SB3: net_arch pi=[64, 64], vf=[64, 64], Tanh, ortho_init), no
observation or reward normalization, seed 1, the same torch CPU threads (--torch-threads, default 1:
ours' default) and the same deterministic-algorithms flag (ours' default, on the CPU).

Measured: env steps / wall seconds of the whole training call, from before the env is built to after
training returns (ours: trader.rl.ppo.train, which also builds the env, writes its run folder and its
final checkpoint; SB3: make the env + PPO(...) + learn()). Process start, imports and loading the
market data (once, shared) are outside. Each implementation first runs one short untimed warm-up
(torch's first-call costs). Env steps are what each learner counts: ours counts every pool step
(global_step, which includes the one reset step per finished episode of NEXT_STEP autoreset: 1 in 501
at horizon 500); SB3 counts its own steps (num_timesteps), and the adapter's extra reset steps (the
same 1 in 501 pool steps) are done but not counted. So at equal counts the two do the same number of
forward passes and within 0.2 % the same pool work.

The adapter: SB3 expects same-step autoreset (a done step returns the reset observation and puts the
final one into info["terminal_observation"]); our pool does NEXT_STEP autoreset (the step after a done
step resets the env and ignores its action). On a done step the adapter keeps the final observation,
then at once issues one more pool step with dummy actions (ignored: every env is due to reset) and
returns the reset observations. That is one extra pool step per episode end. It needs the episodes of
all envs to end on the same step, which holds for the trader env as configured here (every episode is
truncated at the horizon, all envs reset together, and ruin needs a 50 % loss with a 0.1 BTC position
limit); the adapter raises if some envs end and others do not.

Table: the median steps/s of --repeat runs each; "ours / SB3" is the ratio of the medians and "pairs" the
range of the ratios of the interleaved pairs (run i of ours against run i of SB3), which shows the noise
of a shared machine. Returns: mean episodic return of the last 100 finished episodes of the last run
(a sanity check that both learn; not a score).

--json prints everything (per-run wall seconds, the learners' own loop-only rates, mean episodic
returns of the last 100 episodes as a sanity check) as JSON instead of the table; --out writes it
to a file as well.

GPU scale (issue 18):
- ours runs its CUDA path (trader.rl.cuda_rollout: each env group's rollout step, storing the step's
  results and then acting (policy forward, sampling, storing action, log-probability and value), as
  two CUDA graphs with device-side row counters; pinned host buffers, non-blocking copies; GAE as a
  graph; fused Adam; --bf16 adds bf16 autocast) with --num-threads pool threads and --num-env-groups
  groups; --sb3-timesteps gives SB3 fewer steps than ours (it is ~20x slower; steps/s are compared);
- `env_rows` (--env-rows-envs N): env-only steps/s of the pool, sync and async (batch = N / 4), at each
  --env-rows-threads, from trader.sim.bench (the discrete env, random actions);
- `curves` (--curve-num-envs N): return vs env steps of ours, old path (--no-cuda-graphs: the plain
  eager rollout) against the new path (and the new path with bf16 under --bf16), same seed, for the
  learning-curve comparison; on the CPU both paths are the same code.

    PYTHONPATH=python python3 benchmarks/ppo_throughput.py --device cuda --num-envs 16384 65536 \
        --total-timesteps 33554432 --sb3-timesteps 4194304 --num-threads 16 --num-env-groups 1 2 \
        --cartpole-num-envs 0 --curve-num-envs 4096 --curve-timesteps 16777216 --out ppo_throughput.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np
import torch
from torch import nn

ROLLOUT_STEPS = 128
NUM_MINIBATCHES = 4
UPDATE_EPOCHS = 4
SEED = 1


# ---------------------------------------------------------------------------------------------------
# SB3 VecEnv over our NEXT_STEP TradingVectorEnv
# ---------------------------------------------------------------------------------------------------


def make_adapter_class():
    from stable_baselines3.common.vec_env import VecEnv

    class TraderSB3VecEnv(VecEnv):
        """A stable_baselines3 VecEnv over a trader.sim.TradingVectorEnv (NEXT_STEP autoreset), with
        SB3's same-step autoreset: on a done step, info["terminal_observation"] holds the final
        observation and the returned observation is the reset one, got by one extra pool step whose
        (dummy) actions the pool ignores. info["TimeLimit.truncated"] marks truncations (SB3 then
        bootstraps from the final observation, as ours does) and info["episode"] carries the
        episode's return and length (SB3's ep_info_buffer, as its Monitor wrapper writes)."""

        def __init__(self, env):
            self.env = env
            self.render_mode = None
            space = env.single_action_space
            self._dummy = np.zeros((env.num_envs, *space.shape), dtype=space.dtype)
            self._actions = None
            self.pool_steps = 0  # calls to the pool, reset steps included
            self.extra_steps = 0  # of those, the adapter's reset steps
            self._t0 = time.time()
            super().__init__(env.num_envs, env.single_observation_space, space)

        def reset(self):
            seed = self._seeds[0]  # VecEnv.seed(s) sets s + i for env i; the pool seeds env i with s + i
            obs, _ = self.env.reset(seed=seed)
            self._reset_seeds()
            self._reset_options()
            return np.array(obs)  # the pool's arrays are views, rewritten by its next steps

        def step_async(self, actions):
            self._actions = actions

        def step_wait(self):
            obs, reward, terminated, truncated, info = self.env.step(self._actions)
            self.pool_steps += 1
            done = terminated | truncated
            obs, reward, done = np.array(obs), np.array(reward, dtype=np.float32), np.array(done)
            infos = [{} for _ in range(self.num_envs)]
            if done.any():
                if not done.all():
                    raise RuntimeError("TraderSB3VecEnv: some envs ended an episode and others did not; this "
                                       "adapter resets all envs with one extra pool step and needs them to end together")
                ep_r, ep_l = np.asarray(info["episode"]["r"]), np.asarray(info["episode"]["l"])
                elapsed = round(time.time() - self._t0, 6)
                for i in range(self.num_envs):
                    infos[i] = {"terminal_observation": obs[i],
                                "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                                "episode": {"r": float(ep_r[i]), "l": int(ep_l[i]), "t": elapsed}}
                reset_obs = self.env.step(self._dummy)[0]  # NEXT_STEP: this step only resets every env
                self.pool_steps += 1
                self.extra_steps += 1
                obs = np.array(reset_obs)
            return obs, reward, done, infos

        def close(self):
            self.env.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(self, attr_name)] * len(self._indices(indices))

        def set_attr(self, attr_name, value, indices=None):
            setattr(self, attr_name, value)

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            raise NotImplementedError("TraderSB3VecEnv: env_method is not supported")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._indices(indices))

        def _indices(self, indices):
            if indices is None:
                return range(self.num_envs)
            return [indices] if isinstance(indices, int) else list(indices)

    return TraderSB3VecEnv


# ---------------------------------------------------------------------------------------------------
# One training run of each implementation
# ---------------------------------------------------------------------------------------------------


def attempt(fn, *args, **kw) -> dict:
    """fn's result, or {"error": ...} (the traceback on stderr): one failing run does not stop the others."""
    try:
        return fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 (reported in the row)
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"}


def set_torch_flags(threads: int, device: str) -> None:
    """What trader.rl.common.setup_torch sets for ours (threads, deterministic algorithms on the CPU),
    set the same for SB3."""
    if threads > 0:
        torch.set_num_threads(threads)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True


def ours_args(env_id: str, market, num_envs: int, total: int, device: str, opts, runs_dir: str,
              cuda_graphs: bool = True, bf16: bool | None = None, groups: int = 1):
    from trader.rl import ppo

    return ppo.Args(env_id=env_id, data=market if env_id == "trader" else None, num_envs=num_envs,
                    total_timesteps=total, num_steps=ROLLOUT_STEPS, num_minibatches=NUM_MINIBATCHES,
                    update_epochs=UPDATE_EPOCHS, hidden_sizes=(64, 64), seed=SEED, cuda=device == "cuda",
                    torch_threads=opts.torch_threads, num_threads=opts.num_threads, track=False,
                    progress_bar=False, runs_dir=runs_dir, cuda_graphs=cuda_graphs,
                    bf16=opts.bf16 if bf16 is None else bf16,
                    num_env_groups=groups)


def run_ours(env_id: str, market, num_envs: int, total: int, device: str, opts, **path) -> dict:
    """One training run of ours; `path`: cuda_graphs, bf16 (default: the new path, --bf16), groups (env groups)."""
    from trader.rl import ppo

    with tempfile.TemporaryDirectory() as runs_dir:
        args = ours_args(env_id, market, num_envs, total, device, opts, runs_dir, **path)
        set_torch_flags(opts.torch_threads, device)
        with contextlib.redirect_stdout(io.StringIO()):  # its "run folder: ..." lines
            t0 = time.perf_counter()
            result = ppo.train(args)
            wall = time.perf_counter() - t0
    steps = int(result["global_step"])
    history = result["history"]
    return {"steps": steps, "wall_s": wall, "sps": steps / wall, "loop_sps": float(result["sps"]),
            "episodic_return": float(result["episodic_return"]),
            "rollout_s": sum(h["rollout_seconds"] for h in history),
            "iterations_s": sum(h["iteration_seconds"] for h in history),
            "curve": [{"step": h["step"], "episodic_return": h["episodic_return"]} for h in result["history"]]}


def run_sb3(env_id: str, market, num_envs: int, total: int, device: str, opts) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.utils import safe_mean

    set_torch_flags(opts.torch_threads, device)
    lr = ours_args(env_id, market, num_envs, total, device, opts, "").learning_rate
    t0 = time.perf_counter()
    if env_id == "trader":
        from trader.rl.envs import make_env

        # the very env ours trains on: same builder, same options (Args defaults), same seeds
        env = make_adapter_class()(make_env(ours_args(env_id, market, num_envs, total, device, opts, ""),
                                            num_envs, SEED))
    else:
        env = make_vec_env(env_id, n_envs=num_envs, seed=SEED)  # DummyVecEnv of Monitor-wrapped envs
    model = PPO("MlpPolicy", env, learning_rate=lambda remaining: remaining * lr, n_steps=ROLLOUT_STEPS,
                batch_size=num_envs * ROLLOUT_STEPS // NUM_MINIBATCHES, n_epochs=UPDATE_EPOCHS, gamma=0.99,
                gae_lambda=0.95, clip_range=0.2, clip_range_vf=0.2, normalize_advantage=True, ent_coef=0.01,
                vf_coef=0.5, max_grad_norm=0.5, target_kl=None,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": nn.Tanh, "ortho_init": True},
                seed=SEED, device=device, verbose=0)
    model.learn(total_timesteps=total, progress_bar=False)
    wall = time.perf_counter() - t0
    loop_s = max((time.time_ns() - model.start_time) / 1e9, 1e-9)
    steps = int(model.num_timesteps)
    out = {"steps": steps, "wall_s": wall, "sps": steps / wall, "loop_sps": steps / loop_s,
           "episodic_return": float(safe_mean([e["r"] for e in model.ep_info_buffer])) if model.ep_info_buffer
           else float("nan")}
    if env_id == "trader":
        out["adapter_extra_pool_steps"] = env.extra_steps * num_envs
        out["pool_steps"] = env.pool_steps * num_envs
    env.close()
    return out


def env_rows(market, num_envs: int, threads: list[int], seconds: float) -> list[dict]:
    """Env-only steps/s of the pool, sync and async (batch = num_envs / 4), discrete env (trader.sim.bench)."""
    from trader.sim.bench import run_bench

    rows = run_bench(num_envs=(num_envs,), threads=tuple(threads), modes=("sync", "async"), seconds=seconds,
                     envpool=False, python=False, market=market, envs=("discrete",))
    return [{k: r[k] for k in ("num_envs", "threads", "mode", "batch_size", "ours_steps_per_s")} for r in rows]


def curves(market, num_envs: int, total: int, device: str, opts) -> list[dict]:
    """Return vs env steps of ours, old path (eager rollout) and new path (CUDA graph, pinned copies; and
    with bf16 under --bf16), same seed."""
    paths = [("old", dict(cuda_graphs=False, bf16=False)), ("new", dict(cuda_graphs=True, bf16=False))]
    if opts.bf16:
        paths.append(("new_bf16", dict(cuda_graphs=True, bf16=True)))
    out = []
    for name, path in paths:
        r = attempt(run_ours, "trader", market, num_envs, total, device, opts, groups=opts.num_env_groups[0], **path)
        if "error" in r:
            out.append({"path": name, "num_envs": num_envs, "error": r["error"]})
            continue
        out.append({"path": name, "num_envs": num_envs, "steps": r["steps"], "sps": r["sps"],
                    "episodic_return": r["episodic_return"], "curve": r["curve"]})
    return out


# ---------------------------------------------------------------------------------------------------
# Machine description, table
# ---------------------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    import gymnasium
    import stable_baselines3

    info = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "gymnasium": gymnasium.__version__, "stable_baselines3": stable_baselines3.__version__,
            "cpu": cpu_name(), "cpu_count": os.cpu_count(), "device": device}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def table(rows: list[dict]) -> str:
    head = ("| env | num_envs | groups | steps | ours steps/s | SB3 steps/s | ours / SB3 | pairs: min-max | ours return "
            "| SB3 return |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['env']} | {r['num_envs']} | {r['num_env_groups']} | {r['steps']:,} | {r['ours_sps']:,.0f} | {r['sb3_sps']:,.0f} | "
                     f"{r['ratio']:.2f}x | {r['pair_ratio_min']:.2f}-{r['pair_ratio_max']:.2f} | {r['ours_return']:.3g} | "
                     f"{r['sb3_return']:.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where both learners put their networks (auto: cuda when there is one)")
    p.add_argument("--total-timesteps", type=int, default=131_072,
                   help="env steps per run (rounded down to a multiple of num_envs * 128)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[8, 64], help="trader env counts, one row each")
    p.add_argument("--cartpole-num-envs", type=int, default=8, help="CartPole-v1 sanity row (0: none)")
    p.add_argument("--cartpole-timesteps", type=int, default=None,
                   help="env steps of the CartPole row (default: --total-timesteps)")
    p.add_argument("--repeat", type=int, default=1, help="runs per implementation and row (median reported)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads of both (0: torch's default)")
    p.add_argument("--num-threads", type=int, default=1, help="worker threads of the C++ env pool (both)")
    p.add_argument("--data", default=None, help="trader dataset folder (default: the bundled sample)")
    p.add_argument("--num-env-groups", type=int, nargs="+", default=[1],
                   help="ours' env groups, pipelined: a trader row for each (the curves use the first)")
    p.add_argument("--bf16", action="store_true", help="ours: bf16 autocast on CUDA (trader.rl.ppo --bf16)")
    p.add_argument("--sb3-num-envs", type=int, nargs="+", default=None,
                   help="run SB3 only at these env counts (default: every one; once per env count, whatever the groups)")
    p.add_argument("--sb3-timesteps", type=int, default=None,
                   help="env steps of each SB3 run (default: --total-timesteps)")
    p.add_argument("--env-rows-envs", type=int, default=0, help="env-only sync/async rows at this many envs (0: none)")
    p.add_argument("--env-rows-threads", type=int, nargs="+", default=[1, 8, 16], help="pool threads of the env rows")
    p.add_argument("--env-rows-seconds", type=float, default=1.0, help="timed seconds per env row")
    p.add_argument("--curve-num-envs", type=int, default=0,
                   help="return vs env steps, old path vs new path, at this many envs (0: none)")
    p.add_argument("--curve-timesteps", type=int, default=None, help="env steps of each curve run "
                   "(default: --total-timesteps)")
    p.add_argument("--json", action="store_true", help="print everything as JSON instead of the table")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    opts = p.parse_args(argv)

    device = opts.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    warnings.filterwarnings("ignore", message=".*primarily intended to run on the CPU.*")  # SB3 on cuda

    from trader.sim import load_market

    market = load_market(opts.data)
    info = machine_info(device)
    info["loadavg_start"] = loadavg()
    if not opts.json:
        print(f"device: {device}" + (f" ({info['gpu']}, CUDA {info['cuda']})" if device == "cuda" else "")
              + f"; CPU: {info['cpu']}, {info['cpu_count']} logical cores; load average {info['loadavg_start']}")
        print(f"python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, gymnasium {info['gymnasium']}, "
              f"stable-baselines3 {info['stable_baselines3']}; torch threads {opts.torch_threads}, "
              f"pool threads {opts.num_threads}", flush=True)

    configs = [("trader", n, opts.total_timesteps, g) for n in opts.num_envs for g in opts.num_env_groups]
    if opts.cartpole_num_envs > 0:
        configs.append(("CartPole-v1", opts.cartpole_num_envs, opts.cartpole_timesteps or opts.total_timesteps, 1))

    # warm-up, untimed: torch's first-call costs (allocator, kernels, autograd) fall here
    for env_id, n, _, _ in configs[:1]:
        n = min(n, 1024)
        attempt(run_ours, env_id, market, n, n * ROLLOUT_STEPS * 2, device, opts)
        attempt(run_sb3, env_id, market, n, n * ROLLOUT_STEPS * 2, device, opts)

    envs_only = env_rows(market, opts.env_rows_envs, opts.env_rows_threads, opts.env_rows_seconds) \
        if opts.env_rows_envs else []
    if not opts.json:
        for r in envs_only:
            print(f"  env only x{r['num_envs']} {r['mode']} (batch {r['batch_size']}), {r['threads']} threads: "
                  f"{r['ours_steps_per_s']:,.0f} steps/s", flush=True)

    rows, runs, sb3_runs = [], [], {}  # SB3 has no env groups: its runs of an env count serve every group row
    for env_id, n, total, groups in configs:
        total = total // (n * ROLLOUT_STEPS) * (n * ROLLOUT_STEPS)
        if total == 0:
            sys.exit(f"--total-timesteps: less than one rollout of {n} envs x {ROLLOUT_STEPS} steps")
        sb3_total = total if opts.sb3_timesteps is None else min(total, max(n * ROLLOUT_STEPS, opts.sb3_timesteps))
        with_sb3 = (env_id, n) not in sb3_runs and (opts.sb3_num_envs is None or n in opts.sb3_num_envs)
        got = {"ours": [], "sb3": sb3_runs.setdefault((env_id, n), [])}
        for _ in range(opts.repeat):  # interleaved, so both see the same machine load
            for impl in ("ours", "sb3") if with_sb3 else ("ours",):
                r = attempt(run_ours, env_id, market, n, total, device, opts, groups=groups) if impl == "ours" \
                    else attempt(run_sb3, env_id, market, n, sb3_total, device, opts)
                r.update(impl=impl, env=env_id, num_envs=n, num_env_groups=groups, loadavg=loadavg())
                runs.append(r)
                if "error" in r:
                    print(f"  {env_id} x{n} ({groups} groups) {impl}: {r['error']}", flush=True)
                    continue
                got[impl].append(r)
                if not opts.json:
                    split = (f"; rollout {r['rollout_s']:.2f} s, rest of the iterations "
                             f"{r['iterations_s'] - r['rollout_s']:.2f} s") if impl == "ours" else ""
                    print(f"  {env_id} x{n} ({groups} groups) {impl}: {r['steps']:,} steps in {r['wall_s']:.1f} s = {r['sps']:,.0f} "
                          f"steps/s (training loop only {r['loop_sps']:,.0f}{split})", flush=True)
        if not got["ours"]:
            continue
        ours_sps = statistics.median(r["sps"] for r in got["ours"])
        sb3_sps = statistics.median(r["sps"] for r in got["sb3"]) if got["sb3"] else float("nan")
        pairs = [o["sps"] / b["sps"] for o, b in zip(got["ours"], got["sb3"])] or [float("nan")]  # run i vs run i
        rows.append({"env": env_id, "num_envs": n, "num_env_groups": groups, "steps": total, "sb3_steps": sb3_total,
                     "ours_sps": ours_sps, "sb3_sps": sb3_sps,
                     "ratio": ours_sps / sb3_sps, "pair_ratio_min": min(pairs), "pair_ratio_max": max(pairs),
                     "ours_return": got["ours"][-1]["episodic_return"],
                     "sb3_return": got["sb3"][-1]["episodic_return"] if got["sb3"] else float("nan")})
    curve_runs = []
    if opts.curve_num_envs:
        curve_runs = curves(market, opts.curve_num_envs, opts.curve_timesteps or opts.total_timesteps, device, opts)
        if not opts.json:
            for c in curve_runs:
                if "error" in c:
                    print(f"  curve {c['path']} x{c['num_envs']}: {c['error']}", flush=True)
                    continue
                print(f"  curve {c['path']} x{c['num_envs']}: {c['steps']:,} steps at {c['sps']:,.0f} steps/s, "
                      f"return {c['episodic_return']:.4g}; " + ", ".join(
                          f"{p['step']}: {p['episodic_return']:.3g}" for p in c["curve"]
                          if p["episodic_return"] is not None), flush=True)
    info["loadavg_end"] = loadavg()

    def finite(x):  # NaN (no episode finished yet) as null: strict JSON
        if isinstance(x, float) and np.isnan(x):
            return None
        if isinstance(x, list):
            return [finite(v) for v in x]
        return {k: finite(v) for k, v in x.items()} if isinstance(x, dict) else x

    report = json.dumps(finite({"machine": info, "options": vars(opts), "rows": rows, "runs": runs,
                                "env_rows": envs_only, "curves": curve_runs}), indent=1)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(report + "\n")
    if opts.json:
        print(report)
        return
    print()
    print(table(rows))
    print(f"\nload average at the end: {info['loadavg_end']}")


if __name__ == "__main__":
    main()
