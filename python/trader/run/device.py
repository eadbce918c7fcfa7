"""Device, threads and seeds of a run, and the RNG states a checkpoint carries so that a resumed run
draws the same numbers as an uninterrupted one."""

from __future__ import annotations

import random

import numpy as np
import torch


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: cuda if there is one, else Apple's mps, else the CPU; otherwise the torch device named
    (a ValueError naming --device when torch does not know it or this machine does not have it)."""
    if name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
        if dev.type == "cuda" and not (torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()):
            raise ValueError(f"--device: {name}: no such CUDA device here (torch {torch.__version__}, "
                             f"{torch.cuda.device_count()} CUDA devices); use --device auto or cpu")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"--device: {name}: Apple's mps is not available here; use --device auto or cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    """Seed python, numpy and torch. On the CPU, deterministic algorithms give the same result for
    the same seed; on cuda, cudnn's deterministic kernels (as CleanRL)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic


def setup_torch(seed: int, device: str, threads: int, deterministic: bool, dist) -> torch.device:
    """The device, torch's CPU threads (0: torch's default) and the seeds of a run. Data parallel
    (`dist`, see trader.run.distributed): the rank's device and seed (seed + rank * 10_000)."""
    dev = dist.device if dist.device is not None else pick_device(device)
    if threads > 0:
        torch.set_num_threads(threads)
    seed_everything(dist.seed(seed), deterministic, dev)
    return dev


def rng_state() -> dict:
    """Python's, numpy's, torch's (and cuda's) global RNG states, in values a checkpoint stores."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
