"""Data-parallel training over torch.distributed, for the learners (ppo.py) and the encoders
(trader.nn.train), and the launcher behind `trader train --nproc N` / `trader train-encoder --nproc N`.

Under `torchrun --nproc-per-node N` (env RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) every
process is one rank:

- process group: gloo on the CPU, NCCL on cuda (`--dist-backend auto`); a rank on cuda uses the GPU
  cuda:LOCAL_RANK (one process per GPU). NCCL_NVLS_ENABLE=0 and TORCH_SYMM_MEM_DISABLE_MULTICAST=1
  are set before the group starts (NVLink multicast stays off on our GPU machines).
- seeds: rank r seeds python, numpy, torch and its envs with seed + r * RANK_SEED_STRIDE (10_000), so
  rank 0 is seeded as a single-process run and the ranks' envs never share a seed (env i of rank r
  gets seed + r * 10_000 + i). The model starts from rank 0's weights (DistributedDataParallel
  broadcasts them).
- data: each rank steps its own env pool shard (--num-envs envs per rank) or takes its own slice of
  every epoch's permutation (encoders); gradients are averaged over the ranks (DDP's all-reduce),
  so the ranks' weights stay identical (`Dist.in_sync` checks it with a hash of every parameter).
- rank 0 alone writes TensorBoard, checkpoints and prints. A checkpoint holds the shared state once
  (weights, optimizer) and every rank's own state (RNG states, env action logs and cursors): rank 0
  gathers them (`Dist.gather`) before it saves. Every rank loads the same checkpoint on resume and takes
  its own entry; the world size must be the one the checkpoint was written with.
- stopping: each rank's InterruptWatcher flag is all-reduced (max) once an iteration (`Dist.any`), so a
  SIGTERM, SIGINT or spot notice seen by any rank stops every rank at the same iteration and no rank is
  left waiting in a collective; then rank 0 writes the final checkpoint.

Single process (no WORLD_SIZE, or WORLD_SIZE=1): `init` returns a Dist with world_size 1 whose methods
are local no-ops, and nothing of torch.distributed is touched.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

RANK_SEED_STRIDE = 10_000
"""rank r is seeded with seed + r * RANK_SEED_STRIDE"""

SAFETY_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
"""set in every launched or initialized process: NVLink multicast (NVLS) off"""

RESULT_FILE_ENV = "TRADER_RESULT_FILE"
"""rank 0 of a launched run writes its result (JSON) here, for the launcher"""

SHUTDOWN_TIMEOUT_S = 150
"""how long torchrun lets the workers write their final checkpoint after a signal (a spot notice
comes two minutes ahead)"""


def world_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    return rank, world, local


def under_torchrun() -> bool:
    return world_from_env()[1] > 1


@dataclass
class Dist:
    """This process's place in a data-parallel run; world_size 1 when it runs alone."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device | None = None  # the device a distributed rank trains on (None: single process)
    owned: bool = False  # this object started the process group (and closes it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's seed: seed + rank * RANK_SEED_STRIDE."""
        return int(seed) + self.rank * RANK_SEED_STRIDE

    # ---- collectives (local no-ops with one process) ---------------------------------------------
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" and self.device is not None else torch.device("cpu")

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any rank."""
        if not self.enabled:
            return bool(flag)
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over the ranks (float64)."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return t.cpu().tolist()

    def mean(self, value: float) -> float:
        return self.sum([value])[0] / self.world_size

    def gather(self, obj: Any) -> list | None:
        """Every rank's `obj` (picklable), as a list on rank 0; None on the other ranks."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_gather(self, obj: Any) -> list:
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank `src`'s `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def run_on_main(self, fn, *args, **kwargs) -> Any:
        """fn(...) on rank 0, its result on every rank; an exception on rank 0 is raised on every rank
        (as a RuntimeError elsewhere), so no rank is left waiting for a checkpoint that never comes."""
        result, error = None, None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - re-raised below, after the others know
                error = e
        if not self.enabled:
            if error is not None:
                raise error
            return result
        status = self.broadcast((result, None if error is None else f"{type(error).__name__}: {error}"))
        if error is not None:
            raise error
        if status[1] is not None:
            raise RuntimeError(f"rank 0 failed: {status[1]}")
        return status[0]

    # ---- models ----------------------------------------------------------------------------------
    def wrap(self, module: nn.Module, **kwargs: Any) -> nn.Module:
        """DistributedDataParallel(module) when distributed (gradients averaged over the ranks during
        backward); the module itself otherwise."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        if self.device is not None and self.device.type == "cuda":
            kwargs.setdefault("device_ids", [self.device.index])
            kwargs.setdefault("output_device", self.device.index)
        return DDP(module, **kwargs)

    def broadcast_buffers(self, module: nn.Module, src: int = 0) -> None:
        """Rank `src`'s buffers (BatchNorm running statistics, say) on every rank."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for buf in module.buffers():
            dist.broadcast(buf.data, src=src)

    def in_sync(self, modules: Mapping[str, nn.Module]) -> tuple[bool, list[str]]:
        """(whether every rank holds the same parameters and buffers, each rank's sha256 of them)."""
        digests = self.all_gather(state_digest(modules))
        return len(set(digests)) == 1, digests

    def sync_running_stats(self, rms: nn.Module, prior: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
        """Make a RunningMeanStd (buffers mean, var, count) hold the statistics of every rank's data.
        Each rank started from the same `prior` (mean, var, count) and added its own data; the merge
        (Chan et al.'s parallel formula) counts the prior once: exact up to rounding."""
        if not self.enabled:
            return
        mine = torch.cat([rms.mean.double().reshape(-1).cpu(), rms.var.double().reshape(-1).cpu(),
                          rms.count.double().reshape(1).cpu()])
        stats = self.all_gather(mine)
        d = rms.mean.numel()
        m0, v0, c0 = (prior[0].double().reshape(-1).cpu(), prior[1].double().reshape(-1).cpu(),
                      prior[2].double().reshape(1).cpu())
        extra = self.world_size - 1
        counts = [s[2 * d:] for s in stats]
        means = [s[:d] for s in stats]
        variances = [s[d:2 * d] for s in stats]
        total = sum(counts) - extra * c0
        mean = (sum(c * m for c, m in zip(counts, means)) - extra * c0 * m0) / total
        m2 = (sum(c * v + c * (m - mean).square() for c, m, v in zip(counts, means, variances))
              - extra * (c0 * v0 + c0 * (m0 - mean).square()))
        with torch.no_grad():
            rms.mean.copy_(mean.reshape(rms.mean.shape).to(rms.mean))
            rms.var.copy_((m2 / total).clamp_(min=0.0).reshape(rms.var.shape).to(rms.var))
            rms.count.copy_(total.reshape(rms.count.shape).to(rms.count))

    def close(self) -> None:
        """Destroy the process group if this object started it. First the DistributedDataParallel
        wrappers that are gone (their reducers hold the group and its pending work; left to the
        interpreter's exit they can abort the process in gloo's threads) and a barrier, so that no rank
        tears down while another still talks to it."""
        if self.enabled and self.owned:
            import gc

            import torch.distributed as dist

            if dist.is_initialized():
                gc.collect()
                try:
                    dist.barrier()
                finally:
                    dist.destroy_process_group()
                gc.collect()
            self.owned = False


def snapshot_stats(rms: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, var, count) of a RunningMeanStd, copied: the prior of Dist.sync_running_stats."""
    return rms.mean.detach().clone(), rms.var.detach().clone(), rms.count.detach().clone()


def state_digest(modules: Mapping[str, nn.Module | Mapping[str, torch.Tensor]]) -> str:
    """sha256 over every module's state_dict (names, dtypes, shapes, bytes); a state_dict may stand for
    its module (the weights of a checkpoint, say)."""
    h = hashlib.sha256()
    for name in sorted(modules):
        state = modules[name].state_dict() if isinstance(modules[name], nn.Module) else modules[name]
        for key, t in sorted(state.items()):
            t = t.detach().to("cpu").contiguous()
            h.update(f"{name}.{key}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def pick_backend(device: torch.device, backend: str = "auto") -> str:
    if backend in (None, "", "auto"):
        return "nccl" if device.type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"dist_backend: expected auto, gloo or nccl, got {backend!r}")
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("dist_backend: nccl needs cuda (use gloo on the CPU)")
    return backend


def init(device: str | torch.device | None = "auto", backend: str = "auto", timeout_s: float = 1800.0) -> Dist:
    """This process's Dist. Under torchrun (WORLD_SIZE > 1) the process group is started here unless
    it already is (then it is reused, and left open on close). `device`: "auto" (cuda:LOCAL_RANK when
    cuda is there, else the CPU), "cpu", "cuda" or a torch device."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        if world > 1:
            rank = dist.get_rank()
            local = int(os.environ.get("LOCAL_RANK", rank))
            name = dist.get_backend()
            dev = torch.device(f"cuda:{torch.cuda.current_device()}") if name == "nccl" else _rank_device(device, local)
            return Dist(rank, world, local, name, dev, owned=False)
    rank, world, local = world_from_env()
    if world <= 1:
        return Dist()
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    os.environ.update(SAFETY_ENV)
    dev = _rank_device(device, local)
    name = pick_backend(dev, backend)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(name, init_method="env://", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return Dist(rank, world, local, name, dev, owned=True)


def _rank_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    want = str(device) if device is not None else "auto"
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        n = torch.cuda.device_count()
        if local_rank >= n:
            raise RuntimeError(f"rank with LOCAL_RANK {local_rank} has no GPU ({n} visible): run one process per GPU")
        return torch.device(f"cuda:{local_rank}")
    dev = torch.device(want)
    if dev.type not in ("cpu", "cuda"):
        return torch.device("cpu")  # mps and others: data parallel runs on the CPU
    return dev


# =====================================================================================================
# stopping
# =====================================================================================================


def watcher(metadata_url: str | None = None, poll_s: float = 5.0):
    """An InterruptWatcher for a training loop (spot polling when `metadata_url` or
    TRADER_SPOT_METADATA_URL is set). Under torchrun a Ctrl-C reaches a worker twice (from the
    terminal and forwarded by the agent): there, a second SIGINT within 2 s counts as the same one."""
    from trader.store import InterruptWatcher

    if not under_torchrun():
        return InterruptWatcher(metadata_url=metadata_url, poll_s=poll_s)

    class _TorchrunWatcher(InterruptWatcher):
        _first_sigint: float | None = None

        def _on_signal(self, signum, frame):
            if signum != signal.SIGINT:
                return super()._on_signal(signum, frame)
            now = time.monotonic()
            if self._first_sigint is None:
                self._first_sigint = now
                self.request_stop("SIGINT")
            elif now - self._first_sigint >= 2.0:  # a real second Ctrl-C: do not wait for the save
                raise KeyboardInterrupt

    return _TorchrunWatcher(metadata_url=metadata_url, poll_s=poll_s)


def exit_code(reason: str | None) -> int:
    """The exit status of a run that stopped for `reason`: 0 when it finished or was asked to stop by
    SIGTERM or a spot notice (the checkpoint is saved, the scheduler expects a clean exit), 130 for SIGINT."""
    return 130 if reason == "SIGINT" else 0


# =====================================================================================================
# launcher: `trader train --nproc N` runs torchrun over `python -m trader.cli train ...`
# =====================================================================================================


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the launched processes: ours (with `extra`), trader importable, and the
    safety settings (NVLink multicast off), which nothing overrides."""
    env = dict(os.environ)
    env.update(extra or {})
    env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_TIMEOUT_S))
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default for several processes, without its banner
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds trader/
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([package_root, *paths])
    env.update(SAFETY_ENV)
    return env


def torchrun_command(nproc: int, module_args: Sequence[str], port: int | None = None, module: bool = True) -> list[str]:
    """python -m torch.distributed.run --nproc-per-node N --master-port P -m MODULE ARGS... (module=False:
    SCRIPT ARGS...)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(int(nproc)),
            "--nnodes", "1", "--master-addr", "127.0.0.1", "--master-port", str(port or free_port()),
            *(["-m"] if module else []), *module_args]


def launch(nproc: int, module_args: Sequence[str], *, env: Mapping[str, str] | None = None,
           forward: Iterable[int] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)) -> tuple[int, dict | None]:
    """Run `module_args` (e.g. ["trader.cli", "train", ...]) in `nproc` processes under torchrun and
    wait. SIGTERM, SIGINT and SIGHUP sent to this process are passed on to torchrun, which passes them
    to the workers (they save and stop together); torchrun runs in its own session so a Ctrl-C in the
    terminal reaches the workers once. Returns (torchrun's exit status, rank 0's result or None)."""
    fd, result_path = tempfile.mkstemp(prefix="trader-result-", suffix=".json")
    os.close(fd)
    Path(result_path).unlink()
    proc = subprocess.Popen(torchrun_command(nproc, module_args), env=launch_env({**(env or {}),
                                                                                  RESULT_FILE_ENV: result_path}),
                            start_new_session=True)
    received: list[int] = []

    def pass_on(signum, frame):
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {}
    for sig in forward:
        try:
            previous[sig] = signal.signal(sig, pass_on)
        except ValueError:  # not the main thread
            pass
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - handlers above catch SIGINT
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.kill()
    result = None
    try:
        result = json.loads(Path(result_path).read_text())
    except (OSError, ValueError):
        pass
    finally:
        Path(result_path).unlink(missing_ok=True)
    return rc, result


def write_result(result: Mapping[str, Any]) -> None:
    """Rank 0 of a launched run: hand the result to the launcher (no-op outside one)."""
    path = os.environ.get(RESULT_FILE_ENV)
    if not path:
        return
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(result, default=str))
    os.replace(tmp, path)
