"""trader.rl.cuda_rollout: the graph-safe sampling is PPO's policy distribution (checked on the CPU), a
group step writes the rows of its envs (eagerly, on the CPU), and on CUDA the replayed graphs act as the
eager agent, see the optimizer's updates and leave no trace of their capture; PPO trains through the
CUDA path (the CUDA tests skip without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_rl_learners import TRADER, mean_return, random_return  # noqa: E402
from trader.rl import cuda_rollout, maddpg, ppo, sac  # noqa: E402
from trader.rl.cuda_rollout import GroupStep, sample_action_value  # noqa: E402
from trader.rl.policy import load  # noqa: E402

pytestmark = pytest.mark.usefixtures("restore_torch_globals")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_gumbel_max_samples_the_categorical_policy():
    torch.manual_seed(0)
    agent = ppo.Agent(4, 3, 1)
    with torch.no_grad():
        agent.actor[-1].bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    x = torch.randn(1, 4).expand(40_000, 4).contiguous()  # one state, many draws
    action, logprob, value = sample_action_value(agent, x)
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
    action, logprob, _ = sample_action_value(agent, x)
    dist = agent.distribution(x[:1])
    assert torch.allclose(action.mean(0), dist.mean[0], atol=0.05)
    assert torch.allclose(action.std(0), dist.stddev[0], rtol=0.03)
    assert torch.allclose(logprob, dist.log_prob(action).sum(-1), atol=1e-5)


def storage(num_steps: int, num_envs: int, obs_dim: int, device, discrete: bool = True, action_dim: int = 1) -> dict:
    """PPO's rollout storage, as trader.rl.ppo.train allocates it."""
    se = (num_steps, num_envs)
    out = {name: torch.zeros(se, device=device) for name in ("logprobs", "rewards", "terminations", "truncations",
                                                            "values")}
    out["obs"] = torch.zeros((*se, obs_dim), device=device)
    out["actions"] = torch.zeros(se if discrete else (*se, action_dim), device=device,
                                 dtype=torch.long if discrete else torch.float32)
    out["valid"] = torch.zeros(se, dtype=torch.bool, device=device)
    out["raw_next_obs"] = torch.zeros((num_envs, obs_dim), device=device)
    out["next_obs"] = torch.zeros((num_envs, obs_dim), device=device)
    out["next_done"] = torch.zeros(num_envs, dtype=torch.bool, device=device)
    return out


def drive(step: GroupStep, num_steps: int, n: int, obs_dim: int, seed: int):
    """Two rollouts of record/act as PPO's loop calls them, with made-up step results; the results fed
    and the env actions returned, per step."""
    rng = np.random.default_rng(seed)
    fed, sent = [], []
    for _rollout in range(2):
        fed.clear(), sent.clear()
        for t in range(num_steps + 1):
            if t > 0:
                o = rng.normal(size=(n, obs_dim)).astype(np.float32)
                r = rng.normal(size=n).astype(np.float32)
                term, trunc = rng.random(n) < 0.2, rng.random(n) < 0.2
                step.record(o, r, term, trunc)
                fed.append((o, r, term, trunc))
            if t < num_steps:
                sent.append(np.array(step.act()))
    return fed, sent


@pytest.mark.parametrize("discrete", [True, False])
def test_group_step_writes_the_rows_of_its_envs(discrete):
    """Eager (the CPU path): each act writes obs, valid, action, logprob, value at the next row of the
    group's columns, each record the rewards and done flags of the step; the counters wrap per rollout."""
    torch.manual_seed(3)
    T, N, D = 5, 6, 4
    agent = ppo.Agent(D, 3 if discrete else 0, 1 if discrete else 2)
    store = storage(T, N, D, "cpu", discrete, 2)
    low, high = (None, None) if discrete else (torch.tensor([-0.5, -0.5]), torch.tensor([0.5, 0.5]))
    cols = slice(3, 6)
    step = GroupStep(store, cols, agent, lambda x: x, [], low, high, graphs=False, bf16=False)
    fed, sent = drive(step, T, 3, D, seed=4)
    assert step.t_act.item() == step.t_record.item() == 0
    assert not store["obs"][:, :3].any() and not store["rewards"][:, :3].any()  # the other group's columns
    for t in range(T):
        o, r, term, trunc = fed[t]
        assert torch.equal(store["rewards"][t, cols], torch.from_numpy(r))
        assert torch.equal(store["terminations"][t, cols], torch.from_numpy(term.astype(np.float32)))
        assert torch.equal(store["truncations"][t, cols], torch.from_numpy(trunc.astype(np.float32)))
        if t + 1 < T:  # the observation acted on at t + 1 is the one recorded at t
            assert torch.equal(store["obs"][t + 1, cols], torch.from_numpy(o))
            assert torch.equal(store["valid"][t + 1, cols], torch.from_numpy(~(term | trunc)))
        a = store["actions"][t, cols]
        x = store["obs"][t, cols]
        dist = agent.distribution(x)
        logp = dist.log_prob(a) if discrete else dist.log_prob(a).sum(-1)
        assert torch.allclose(store["logprobs"][t, cols], logp, atol=1e-6)
        assert torch.allclose(store["values"][t, cols], agent.get_value(x), atol=1e-6)
        expected = a.numpy() if discrete else np.clip(a.numpy(), -0.5, 0.5)
        assert np.array_equal(sent[t], expected)
    assert torch.equal(store["next_obs"][cols], torch.from_numpy(fed[-1][0]))


@cuda
@pytest.mark.parametrize("bf16", [False, True])
def test_graphed_group_step_acts_as_the_agent_and_sees_optimizer_steps(bf16):
    torch.manual_seed(2)
    T, N, D = 4, 4096, 6
    agent = ppo.Agent(D, 3, 1).cuda()
    store = storage(T, N, D, "cuda")
    rms = ppo.RunningMeanStd((D,)).cuda()

    def normalize(x):
        rms.update(x)
        return rms.normalize(x)

    step = GroupStep(store, slice(0, N), agent, normalize, list(rms.buffers()), None, None, graphs=True, bf16=bf16)
    assert step.t_act.item() == step.t_record.item() == 0 and rms.count.item() == pytest.approx(1e-4)  # put back
    opt = torch.optim.Adam(agent.parameters(), lr=0.1)
    fed, sent = drive(step, T, N, D, seed=5)
    tol = 0.05 if bf16 else 1e-5
    with torch.no_grad():
        for t in range(T):
            x, a = store["obs"][t], store["actions"][t]
            assert torch.allclose(store["values"][t], agent.get_value(x), atol=tol)
            assert torch.allclose(store["logprobs"][t], agent.distribution(x).log_prob(a), atol=tol)
            assert np.array_equal(sent[t], a.cpu().numpy())
            assert torch.equal(store["rewards"][t].cpu(), torch.from_numpy(fed[t][1]))
    assert rms.count.item() == pytest.approx(1e-4 + 2 * T * N)  # one update per record, none from the capture
    x = store["next_obs"].clone()
    opt.zero_grad()
    agent.get_value(x).square().mean().backward()
    opt.step()  # in place: the next replay must read the new weights
    step.act()
    with torch.no_grad():
        assert torch.allclose(store["values"][0], agent.get_value(x), atol=tol)


# ---- the graph branches' Python on the CPU: capture emulated ------------------------------------


class EagerGraph:
    """What the learners see of a captured CUDA graph, on the CPU: replay runs the function again and
    copies its results into the outputs of the capture call (a graph rewrites those static tensors)."""

    def __init__(self, fn, out):
        self.fn, self.out = fn, out

    def replay(self) -> None:
        new = self.fn()
        if new is not None:
            for o, n in zip(*((self.out, new) if isinstance(new, tuple) else ((self.out,), (new,)))):
                o.copy_(n)


def eager_capture(fn, state=()):
    """cuda_rollout.capture without CUDA: the warm-up calls, the state put back, one call for the outputs."""
    with torch.no_grad():
        saved = [t.clone() for t in state]
        for _ in range(cuda_rollout.WARMUP_CALLS):
            fn()
        for t, s in zip(state, saved):
            t.copy_(s)
        out = fn()  # a capture does not run: undo this call's effects as well
        for t, s in zip(state, saved):
            t.copy_(s)
    return EagerGraph(fn, out), out


@pytest.fixture
def emulated_graphs(monkeypatch):
    monkeypatch.setattr(cuda_rollout, "capture", eager_capture)
    monkeypatch.setattr(ppo, "capture", eager_capture)
    for module in (ppo, sac, maddpg):
        monkeypatch.setattr(module, "graphs_available", lambda device: True)


@pytest.mark.parametrize("learner, options", [
    (ppo, dict(num_envs=8, num_steps=32, total_timesteps=8192)),
    (ppo, dict(actions="continuous", num_envs=8, num_steps=32, total_timesteps=8192, num_env_groups=2,
               norm_obs=True)),
    (sac, dict(num_envs=4, total_timesteps=3000, learning_starts=500, batch_size=128, hidden_sizes=(64, 64))),
    (maddpg, dict(num_agents=2, num_envs=4, total_timesteps=4000, learning_starts=1000, update_every=4,
                  batch_size=256, learning_rate=1e-3))])
def test_graph_branches_learn_with_capture_emulated(tmp_path, emulated_graphs, learner, options):
    """The learners' --cuda-graphs code (the group steps with their counters and restored state, the
    GAE graph's static outputs, Gumbel-max sampling, the graphed acting forward) run on the CPU, each
    'graph' replayed as an eager call: they learn the rising market of test_rl_learners as the eager
    path does (the CUDA specifics, capture and pinned copies, are the CUDA tests' part)."""
    args = learner.Args(**TRADER, runs_dir=str(tmp_path), **options)
    result = learner.train(args)
    trained, rand = mean_return(load(result["checkpoint"]).act, args), random_return(args)
    assert trained > rand + 10.0, (trained, rand)


@cuda
@pytest.mark.parametrize("options", [dict(), dict(bf16=True), dict(actions="continuous", num_env_groups=2),
                                     dict(norm_obs=True, norm_reward=True, curiosity="rnd")])
def test_ppo_trains_through_the_cuda_path(tmp_path, options):
    args = ppo.Args(**TRADER, cuda=True, num_envs=8, num_steps=32, total_timesteps=2048, runs_dir=str(tmp_path),
                    **options)
    result = ppo.train(args)
    assert result["global_step"] == 2048
    assert np.isfinite(result["episodic_return"])


@cuda
@pytest.mark.parametrize("learner, options", [(sac, dict(actions="continuous")), (sac, dict()),
                                              (sac, dict(cuda_graphs=False)), (maddpg, dict(num_agents=2)),
                                              (maddpg, dict(num_agents=2, actions="continuous"))])
def test_off_policy_learners_train_through_the_cuda_path(tmp_path, learner, options):
    args = learner.Args(**TRADER, cuda=True, num_envs=4, total_timesteps=1200, learning_starts=400, batch_size=64,
                        runs_dir=str(tmp_path), **options)
    if learner is maddpg:
        args.update_every = 8
    result = learner.train(args)
    assert result["global_step"] == 1200
    assert np.isfinite(result["episodic_return"])
