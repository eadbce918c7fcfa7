"""trader.rl.defaults: the trader env's defaults of a new run, and the GPU-sized num_envs on CUDA (issue 13)."""

import torch

from trader.rl import ppo, sac
from trader.rl.defaults import CUDA_MAX_ENVS, QUOTE_DEFAULTS, TRADER_DEFAULTS, cuda_num_envs, trader_defaults
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


def test_a_quoting_ppo_run_starts_from_the_quote_recipe_and_its_own_options_win():
    """Session 15: `--actions quote` brings QUOTE_DEFAULTS (issue 13's recipe); any option given wins over it, and
    market orders and SAC never see it."""
    quote = resolve_args(ppo.Args, None, {"actions": "quote"})
    recipe = ("reward", "reward_scale", "feature_set", "abstain_prior", "quote_sides", "markout_loss_weight",
              "markout_inventory_weight")
    assert tuple(getattr(quote, k) for k in recipe) == ("markout", 10.0, 2, 0.9, "symmetric", 2.25, 0.5) == \
        tuple(QUOTE_DEFAULTS["ppo"][k] for k in recipe)
    mine = resolve_args(ppo.Args, None, {"actions": "quote", "reward": "pnl", "abstain_prior": 0.0, "quote_sides": "both"})
    assert (mine.reward, mine.abstain_prior, mine.quote_sides, mine.reward_scale) == ("pnl", 0.0, "both", 10.0)
    # the recipe's markout weights stay with its markout reward: another reward keeps the env's (which it accepts)
    assert (mine.markout_loss_weight, mine.markout_inventory_weight) == (1.0, 0.0)
    penalty = resolve_args(ppo.Args, None, {"actions": "quote", "reward": "markout_penalty", "markout_loss_weight": 3.0})
    assert (penalty.markout_loss_weight, penalty.markout_inventory_weight) == (3.0, 0.5)
    market = resolve_args(ppo.Args, None, {})
    assert (market.reward, market.abstain_prior, market.quote_sides, market.feature_set) == ("pnl", 0.0, "any", 1)
    assert not set(QUOTE_DEFAULTS["ppo"]) & set(trader_defaults(sac.Args, {"actions": "quote"}))
