"""trader.rl.cuda_rollout: the graphed actor's sampling is PPO's policy distribution (checked on the CPU
by calling its uncaptured body), and on CUDA the replayed graph acts as the eager agent and sees the
optimizer's updates; PPO trains through the CUDA path (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trader.rl import ppo  # noqa: E402
from trader.rl.cuda_rollout import GraphedActor  # noqa: E402
from trader.sim import Market  # noqa: E402

pytestmark = pytest.mark.usefixtures("restore_torch_globals")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def uncaptured(agent, obs: torch.Tensor) -> GraphedActor:
    """A GraphedActor whose _act runs eagerly on `obs` (no capture: the CPU has no graphs)."""
    actor = object.__new__(GraphedActor)
    actor.agent, actor.bf16, actor.obs = agent, False, obs
    return actor


def test_gumbel_max_samples_the_categorical_policy():
    torch.manual_seed(0)
    agent = ppo.Agent(4, 3, 1)
    with torch.no_grad():
        agent.actor[-1].bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    x = torch.randn(1, 4).expand(40_000, 4).contiguous()  # one state, many draws
    action, logprob, value = uncaptured(agent, x)._act()
    dist = agent.distribution(x[:1])
    freq = torch.bincount(action, minlength=3).float() / len(action)
    assert torch.allclose(freq, dist.probs[0], atol=0.012), (freq, dist.probs[0])  # ~5 sigma at 40k draws
    assert torch.allclose(logprob, dist.log_prob(action), atol=1e-6)
    assert torch.allclose(value, agent.get_value(x), atol=1e-6)


def test_gaussian_samples_and_logprob_of_the_continuous_policy():
    torch.manual_seed(1)
    agent = ppo.Agent(4, 0, 2)
    with torch.no_grad():
        agent.actor_logstd.copy_(torch.tensor([[-1.0, 0.5]]))
    x = torch.randn(1, 4).expand(40_000, 4).contiguous()
    action, logprob, _ = uncaptured(agent, x)._act()
    dist = agent.distribution(x[:1])
    assert torch.allclose(action.mean(0), dist.mean[0], atol=0.05)
    assert torch.allclose(action.std(0), dist.stddev[0], rtol=0.03)
    assert torch.allclose(logprob, dist.log_prob(action).sum(-1), atol=1e-5)


@cuda
@pytest.mark.parametrize("bf16", [False, True])
def test_graph_replays_the_agent_and_sees_optimizer_steps(bf16):
    torch.manual_seed(2)
    agent = ppo.Agent(6, 3, 1).cuda()
    actor = GraphedActor(agent, 4096, 6, bf16)
    opt = torch.optim.Adam(agent.parameters(), lr=0.1)
    x = torch.randn(4096, 6, device="cuda")
    for _ in range(2):
        action, logprob, value = (t.clone() for t in actor(x))
        with torch.no_grad():
            tol = 0.05 if bf16 else 1e-5
            assert torch.allclose(value, agent.get_value(x), atol=tol)
            assert torch.allclose(logprob, agent.distribution(x).log_prob(action), atol=tol)
        opt.zero_grad()
        agent.get_value(x).square().mean().backward()
        opt.step()  # in place: the next replay must read the new weights


@cuda
@pytest.mark.parametrize("options", [dict(), dict(bf16=True), dict(actions="continuous", num_env_groups=2)])
def test_ppo_trains_through_the_cuda_path(tmp_path, options):
    rows = 300
    book = np.zeros((rows, 2, 4), dtype=np.int64)
    mid = 1000 + np.arange(rows)
    for level in range(2):
        book[:, level, 0], book[:, level, 2] = mid - level, mid + 1 + level
        book[:, level, 1] = book[:, level, 3] = 1000
    features = np.random.default_rng(0).normal(0.0, 0.1, (rows, 2)).astype(np.float32)
    market = Market(book, features, np.arange(rows, dtype=np.int64), tick_size=1.0, lot_size=1.0)
    args = ppo.Args(env_id="trader", data=market, horizon=20, taker_fee_bps=0.0, trade_size=1.0, max_position=10.0,
                    reward_scale=0.1, progress_bar=False, track=False, cuda=True, num_envs=8, num_steps=32,
                    total_timesteps=2048, runs_dir=str(tmp_path), **options)
    result = ppo.train(args)
    assert result["global_step"] == 2048
    assert np.isfinite(result["episodic_return"])
