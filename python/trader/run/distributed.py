"""Data-parallel training over torch.distributed, for the learners (trader.rl.ppo) and the encoders
(trader.nn.train): this process's place in the run (`Dist`) and the collectives the training loops use.
`trader train --nproc N` / `trader train-encoder --nproc N` start the processes (trader.run.launch).

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
- stopping: each rank's InterruptWatcher flag is all-reduced (max) once an iteration (`Dist.any`, see
  trader.run.interrupt.stop_reason), so a SIGTERM, SIGINT or spot notice seen by any rank stops every
  rank at the same iteration and no rank is left waiting in a collective; then rank 0 writes the final
  checkpoint.

Single process (no WORLD_SIZE, or WORLD_SIZE=1): `init` returns a Dist with world_size 1 whose methods
are local no-ops, and nothing of torch.distributed is touched.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

RANK_SEED_STRIDE = 10_000
"""rank r is seeded with seed + r * RANK_SEED_STRIDE"""

SAFETY_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
"""set in every launched or initialized process: NVLink multicast (NVLS) off"""


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

    def check_sync(self, modules: Mapping[str, nn.Module], report: Path, **context: Any) -> bool:
        """Whether every rank ends with the same weights; data parallel, rank 0 writes `report`
        (ddp_sync.json: world size, backend, `context`, in_sync, each rank's sha256) and a warning says
        when they differ. True with one process."""
        if not self.enabled:
            return True
        in_sync, digests = self.in_sync(modules)
        if self.is_main:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps({"world_size": self.world_size, "backend": self.backend, **context,
                                          "in_sync": in_sync, "state_sha256": digests}, indent=1))
        if not in_sync:
            import warnings

            warnings.warn(f"data-parallel ranks ended with different weights: {digests}", stacklevel=2)
        return in_sync

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
