"""trader.rl.defaults: the trader env's defaults of a new run, and the GPU-sized num_envs on CUDA (issue 13)."""

import torch

from trader.rl import ppo, sac
from trader.rl.defaults import CUDA_MAX_ENVS, TRADER_DEFAULTS, cuda_num_envs, trader_defaults
from trader.run.lifecycle import resolve_args


def test_cuda_num_envs_leaves_sixteen_updates_in_the_budget():
    assert cuda_num_envs(500_000, 128, 4) == 128  # 256 envs x 128 steps x 16 updates > 500,000
    assert cuda_num_envs(256 * 128 * 16, 128, 4) == 256
    assert cuda_num_envs(10**12, 128, 4) == CUDA_MAX_ENVS
    assert cuda_num_envs(1_000, 128, 4) == 4  # never below the CPU default


def test_trader_defaults_size_ppo_for_the_gpu_only_on_cuda_and_when_num_envs_is_not_given(monkeypatch):
    cpu = TRADER_DEFAULTS["ppo"]["num_envs"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trader_defaults(ppo.Args, {})["num_envs"] == cpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trader_defaults(ppo.Args, {"total_timesteps": 10**9})["num_envs"] == CUDA_MAX_ENVS
    assert trader_defaults(ppo.Args, {"total_timesteps": 10**9, "num_envs": 8})["num_envs"] == cpu  # given: kept
    assert trader_defaults(ppo.Args, {"total_timesteps": 10**9, "cuda": False})["num_envs"] == cpu
    assert "num_envs" not in trader_defaults(sac.Args, {"total_timesteps": 10**9})
    args = resolve_args(ppo.Args, None, {"total_timesteps": 10**9})
    assert args.num_envs == CUDA_MAX_ENVS
    assert resolve_args(ppo.Args, None, {"total_timesteps": 10**9, "num_envs": 8}).num_envs == 8
