"""`trader-sim bench`: env-steps per second of the C++ trading env pool, next to envpool's CartPole-v1
(same num_envs, threads, sync/async scheme) and the pure-Python reference env in gymnasium's
SyncVectorEnv, measured in the same run.

Two envs (the rows' "env" key): `discrete` (default options: hold/buy/sell market orders) and `quote`
(random quote actions on the default grid: a bid and an ask re-quoted every step, their queues
replayed against every book change and trade between rows).

Scheme: sync steps all num_envs envs at once (batch_size = num_envs); async keeps every env busy
and receives batches of batch_size = num_envs // 4 (envpool's send/recv loop). With num_envs = 1
async is the same as sync (batch 1 = num_envs). Actions are random valid actions generated before
timing. Each cell runs for `seconds` after a warm-up; steps are env-steps (rows returned).
Threads: the threads that step envs. Ours count the thread that calls step / recv (it steps envs
while it waits), except async with 1 thread: one worker besides the caller, as in envpool, whose
num_threads are always worker threads besides the caller. The Python reference is single-threaded and
sync whatever the row says, and measured once per num_envs.
"""

from __future__ import annotations

import gc
import time
import warnings
from typing import Any, Callable

import numpy as np

HORIZON = 500
PYTHON_MAX_ENVS = 64  # above this the Python reference takes too long to be worth a cell
_ACTION_BATCHES = 64  # pre-generated action batches, cycled


def _time_loop(step: Callable[[int], int], seconds: float, warmup: float) -> float:
    """Call step(i) (returns env-steps done) for `warmup` then `seconds`; returns env-steps/s."""
    i = 0
    end = time.perf_counter() + warmup
    while time.perf_counter() < end or i < 3:
        step(i)
        i += 1
    steps = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        steps += step(i)
        i += 1
        now = time.perf_counter()
        if now >= end:
            return steps / (now - t0)


def _bench_pool(env, n: int, batch: int, actions: np.ndarray, seconds: float, warmup: float,
                env_ids: Callable[[Any], np.ndarray]) -> float:
    """Sync (batch == n): step(actions). Async: recv a batch, send actions to the envs in it.

    Both schemes do about num_envs env-steps per timed call (sync one step, async num_envs // batch
    recv/send pairs), and the actions are a list of arrays made before timing: the harness's own
    per-call costs (the clock, the call, indexing a numpy array) then weigh the same per env-step in
    both, not four times as much in async (issue 18)."""
    if batch == n:
        env.reset()
        acts = list(actions)

        def step(i: int) -> int:
            env.step(acts[i % len(acts)])
            return n
    else:
        env.async_reset()
        acts = list(actions[:, :batch])
        pairs = n // batch  # batch < n here

        def step(i: int) -> int:
            k = i * pairs
            for j in range(k, k + pairs):
                info = env.recv()[-1]
                env.send(acts[j % len(acts)], env_ids(info))
            return pairs * batch
    return _time_loop(step, seconds, warmup)


ENVS = {"discrete": {}, "quote": {"actions": "quote"}}


def _ours(market, n, batch, threads, actions, seconds, warmup, options) -> float:
    from trader.sim.env import TradingVectorEnv

    env = TradingVectorEnv(market, num_envs=n, batch_size=batch, num_threads=threads, seed=0, horizon=HORIZON,
                           **options)
    try:
        return _bench_pool(env, n, batch, actions, seconds, warmup, lambda info: info["env_id"])
    finally:
        env.close()


def _envpool(n, batch, threads, actions, seconds, warmup) -> float | None:
    try:
        import envpool
    except (ImportError, OSError):
        return None
    with warnings.catch_warnings():  # envpool's CartPole Box bounds: float64 -> float32 notice (at first recv)
        warnings.simplefilter("ignore")
        env = envpool.make_gymnasium("CartPole-v1", num_envs=n, batch_size=batch, num_threads=threads, seed=0)
        try:
            return _bench_pool(env, n, batch, (actions % 2).astype(np.int32), seconds, warmup,
                               lambda info: info["env_id"])
        finally:
            env.close()


def _python(market, n, actions, seconds, warmup, options) -> float | None:
    try:
        from trader.sim.reference import ReferenceTradingEnv
    except ImportError:
        return None
    import gymnasium as gym

    from trader.sim.env import pool_config

    cfg = pool_config(market, dict(options, horizon=HORIZON))
    # The C++ stream as the reference's tuples (exch_ts, price, qty, kind, previous size): speed only.
    r = market.records
    records = list(zip(*(c.tolist() for c in (r[:, 0], r[:, 1], r[:, 2], r[:, 3] >> 56, r[:, 3] & ((1 << 56) - 1)))))
    env = gym.vector.SyncVectorEnv([
        (lambda i=i: ReferenceTradingEnv(market.book, market.features, seed=0, env_id=i, ts=market.ts,
                                         records=records, starts=market.starts, **cfg)) for i in range(n)])
    try:
        env.reset()

        def step(i: int) -> int:
            env.step(actions[i % len(actions)])
            return n
        return _time_loop(step, seconds, warmup)
    finally:
        env.close()


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def run_bench(num_envs=(1, 64, 1024), threads=(1, 2), modes=("sync", "async"), seconds: float = 1.0,
              warmup: float | None = None, envpool: bool = True, python: bool = True,
              python_max_envs: int = PYTHON_MAX_ENVS, market=None, seed: int = 0,
              progress: Callable[[dict], None] | None = None, envs=tuple(ENVS)) -> list[dict]:
    """One row per (env, num_envs, threads, mode): env-steps/s of ours, envpool CartPole-v1 and the
    Python reference (None where not measured, with the reason in `note`), and the ratios
    ours/envpool and ours/python. `progress(row)` is called after each row."""
    from trader.sim.env import TradingVectorEnv, load_market

    for m in modes:
        if m not in ("sync", "async"):
            raise ValueError(f"modes: {m!r} is not 'sync' or 'async'")
    for e in envs:
        if e not in ENVS:
            raise ValueError(f"envs: {e!r} is not one of {', '.join(ENVS)}")
    warmup = min(0.25, 0.2 * seconds) if warmup is None else warmup
    market = load_market() if market is None else market
    rng = np.random.default_rng(seed)
    rows = []
    for kind in envs:
        options = ENVS[kind]
        for n in num_envs:
            n = int(n)
            probe = TradingVectorEnv(market, num_envs=1, horizon=HORIZON, **options)
            actions = rng.integers(0, probe.single_action_space.n, size=(_ACTION_BATCHES, n), dtype=np.int64)
            probe.close()
            py_sps, py_note = None, ""
            if python:
                if n > python_max_envs:
                    py_note = f"python ref not run above {python_max_envs} envs (too slow)"
                else:
                    py_sps = _python(market, n, actions, seconds, warmup, options)
                    py_note = "" if py_sps is not None else "python reference env missing"
                gc.collect()
            for t in threads:
                for mode in modes:
                    batch = n if mode == "sync" else max(1, n // 4)
                    notes = [f"{kind} env"]  # also in the note: the CLI table shows notes
                    if mode == "async" and batch == n:
                        notes.append("async = sync (batch = num_envs)")
                    ours = _ours(market, n, batch, int(t), actions, seconds, warmup, options)
                    gc.collect()
                    ep = _envpool(n, batch, int(t), actions, seconds, warmup) if envpool else None
                    gc.collect()
                    if envpool and ep is None:
                        notes.append("envpool missing")
                    if py_note:
                        notes.append(py_note)
                    row = {
                        "env": kind, "num_envs": n, "threads": int(t), "mode": mode, "batch_size": batch,
                        "ours_steps_per_s": ours, "envpool_cartpole_steps_per_s": ep,
                        "python_ref_steps_per_s": py_sps, "ours_vs_envpool": _ratio(ours, ep),
                        "ours_vs_python": _ratio(ours, py_sps), "note": "; ".join(notes),
                    }
                    rows.append(row)
                    if progress:
                        progress(row)
    return rows


def machine() -> dict:
    """CPU model and core count, for the record."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count()}
