"""Multi-agent DDPG (Lowe et al. 2017, "Multi-agent actor-critic for mixed cooperative-competitive
environments"): decentralized actors mu_i(o_i), centralized critics Q_i(o_1..o_K, a_1..a_K), one pair per
agent, trained off-policy from a shared replay buffer, with polyak-averaged target networks. Discrete
actions go through the straight-through Gumbel-softmax (Sec. 4 / App.: the actor's sample is a one-hot
in the forward pass, differentiable in the backward pass); continuous ones through a reparameterized
tanh-Gaussian (the original code's diagonal Gaussian, squashed to [-1, 1]).

Envs: the trader env with K agents sharing each book (obs [B, K, D], reward [B, K]) or an MPE task
(`mpe2:simple_spread_v3`, the paper's cooperative navigation). Defaults are the paper's settings
(App. / the authors' code): Adam lr 0.01, gamma 0.95, tau 0.01, batch 1024, two 64-unit ReLU layers,
gradient norm clip 0.5, an update every 100 env steps once 1024 * 25 transitions are stored, and a small
penalty on the actor's logits (1e-3 * mean logit^2).

    python -m trader.rl.maddpg --env-id mpe2:simple_spread_v3 --total-timesteps 250000
    trader train --algo maddpg --env trader --num-agents 2
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trader.rl.args import CommonArgs
from trader.rl.buffers import ReplayBatch, ReplayBuffer, real_rows
from trader.rl.cuda_rollout import HostStaging, graphed, graphs_available
from trader.rl.curiosity import curiosity_state, load_curiosity_state, make_curiosity
from trader.rl.envs import EnvRunner, make_env
from trader.rl.episodes import EpisodeStats
from trader.rl.mpe import Coverage
from trader.rl.nets import mlp, polyak_update
from trader.run.lifecycle import Run, due, parse_args

DATA_PARALLEL = False
"""one process: the replay buffer and the updates are not split over ranks"""


@dataclass
class Args(CommonArgs):
    num_agents: int = 2
    """trader: agents sharing each env's book"""
    total_timesteps: int = 1_500_000
    """total env steps (all envs; the paper: 60000 episodes of 25 steps)"""
    learning_rate: float = 1e-2
    """learning rate of the actors and critics"""
    num_envs: int = 1
    """number of parallel envs"""
    buffer_size: int = 1_000_000
    """replay buffer capacity (transitions of all agents)"""
    gamma: float = 0.95
    """discount factor"""
    tau: float = 0.01
    """target smoothing coefficient (polyak)"""
    batch_size: int = 1024
    """transitions per update"""
    learning_starts: int = 25_600
    """env steps stored before the first update (the authors' code: batch size x episode length)"""
    update_every: int = 100
    """env steps between updates"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden layers of each actor and critic"""
    max_grad_norm: float = 0.5
    """gradient norm clip"""
    actor_reg: float = 1e-3
    """penalty on the actor's mean squared logits (discrete) or pre-squash means (continuous)"""
    gumbel_temperature: float = 1.0
    """temperature of the Gumbel-softmax samples"""
    cuda_graphs: bool = True
    """on CUDA: the agents' acting forward and sampling as a CUDA graph (trader.rl.cuda_rollout.graphed);
    no effect on the CPU"""


# ---------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------


def gumbel_softmax(logits: torch.Tensor, temperature: float = 1.0, hard: bool = True) -> torch.Tensor:
    """A differentiable sample of Categorical(softmax(logits)): softmax((logits + g) / temperature) with
    g ~ Gumbel(0, 1) (Jang et al. 2017; Maddison et al. 2017). hard=True gives the one-hot of the
    sample in the forward pass and the soft sample's gradient in the backward pass (straight-through,
    Bengio et al. 2013), as MADDPG needs for discrete actions (Lowe et al. 2017, Sec. 4)."""
    u = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
    soft = F.softmax((logits - torch.log(-torch.log(u))) / temperature, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return one_hot - soft.detach() + soft



class Actor(nn.Module):
    """mu_i(o_i): logits of the agent's moves (discrete), or mean and log std (continuous)."""

    def __init__(self, obs_dim: int, num_actions: int, action_dim: int, hidden=(64, 64)):
        super().__init__()
        self.discrete = num_actions > 0
        self.action_dim = action_dim
        self.net = mlp(obs_dim, hidden, num_actions if self.discrete else 2 * action_dim, nn.ReLU)

    def sample(self, obs: torch.Tensor, temperature: float = 1.0):
        """(differentiable action: one-hot [B, A] or in [-1, 1]^d, the raw outputs for the penalty)."""
        out = self.net(obs)
        if self.discrete:
            return gumbel_softmax(out, temperature, hard=True), out
        mean, log_std = out.split(self.action_dim, -1)
        std = log_std.clamp(-5.0, 2.0).exp()
        return torch.tanh(mean + std * torch.randn_like(mean)), mean

    def act(self, obs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """The env's action of a sample: the move of `sample`'s one-hot (the argmax of the soft sample from
        the same noise; the straight-through one-hot only matters to gradients) or the position [B, 1]."""
        if not self.discrete:
            return self.sample(obs, temperature)[0]
        return gumbel_softmax(self.net(obs), temperature, hard=False).argmax(-1)

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.net(obs)
        return out.argmax(-1) if self.discrete else torch.tanh(out[..., :self.action_dim])


class Critic(nn.Module):
    """Q_i(o_1..o_K, a_1..a_K): agent i's centralized critic sees every observation and action."""

    def __init__(self, num_agents: int, obs_dim: int, action_in: int, hidden=(64, 64)):
        super().__init__()
        self.net = mlp(num_agents * (obs_dim + action_in), hidden, 1, nn.ReLU)

    def forward(self, obs_all: torch.Tensor, actions_all: torch.Tensor) -> torch.Tensor:
        """obs_all [B, K, D], actions_all [B, K, A_in] -> [B]."""
        return self.net(torch.cat([obs_all.flatten(1), actions_all.flatten(1)], -1)).squeeze(-1)


# ---------------------------------------------------------------------------------------------------
# The learner: K actors and centralized critics, their targets and optimizers, and one update
# ---------------------------------------------------------------------------------------------------


class MultiAgentDDPG:
    """Agent i's actor mu_i and centralized critic Q_i, their polyak-averaged targets and their Adam
    optimizers, for K agents with discrete moves (num_actions of them) or one continuous action each."""

    def __init__(self, args: Args, num_agents: int, obs_dim: int, num_actions: int, device: torch.device):
        self.args, self.K, self.num_actions = args, num_agents, num_actions
        action_dim = 1  # continuous trader agents: one target position each
        action_in = num_actions if num_actions else action_dim  # width of one agent's action at the critics
        K, hidden = num_agents, args.hidden_sizes
        self.actors = [Actor(obs_dim, num_actions, action_dim, hidden).to(device) for _ in range(K)]
        self.critics = [Critic(K, obs_dim, action_in, hidden).to(device) for _ in range(K)]
        self.target_actors = [Actor(obs_dim, num_actions, action_dim, hidden).to(device) for _ in range(K)]
        self.target_critics = [Critic(K, obs_dim, action_in, hidden).to(device) for _ in range(K)]
        for net, target in zip(self.actors + self.critics, self.target_actors + self.target_critics):
            target.load_state_dict(net.state_dict())
        self.actor_optimizers = [torch.optim.Adam(a.parameters(), lr=args.learning_rate) for a in self.actors]
        self.critic_optimizers = [torch.optim.Adam(c.parameters(), lr=args.learning_rate) for c in self.critics]

    def modules(self) -> dict[str, nn.Module]:
        """The networks, by their names in a checkpoint's weights."""
        return {**{f"actor_{i}": m for i, m in enumerate(self.actors)},
                **{f"critic_{i}": m for i, m in enumerate(self.critics)},
                **{f"target_actor_{i}": m for i, m in enumerate(self.target_actors)},
                **{f"target_critic_{i}": m for i, m in enumerate(self.target_critics)}}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**{f"actor_{i}": o for i, o in enumerate(self.actor_optimizers)},
                **{f"critic_{i}": o for i, o in enumerate(self.critic_optimizers)}}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Each agent samples from its own actor (decentralized execution): [B, K] moves or [B, K, 1]
        positions."""
        return torch.stack([self.actors[i].act(obs[:, i], self.args.gumbel_temperature) for i in range(self.K)], 1)

    def _one_hot(self, actions: torch.Tensor) -> torch.Tensor:
        """Stored actions as the critics see them: [B, K, A_in]."""
        return F.one_hot(actions.long(), self.num_actions).float() if self.num_actions else actions

    def update(self, data: ReplayBatch, curiosity) -> dict:
        """Each agent's critic, then its actor, on one shared batch (as the authors' code); then targets.
        With curiosity, one module over every agent's own (o_i, a_i, o_i') adds its bonus to the rewards.
        The losses come back as device tensors (read when logged, not per update)."""
        args, K = self.args, self.K
        rewards = data.rewards  # [B, K]
        if curiosity is not None:
            B = len(rewards)
            flat = lambda x: x.reshape(B * K, *x.shape[2:])  # noqa: E731
            rewards = rewards + args.curiosity_coef * curiosity.reward(
                flat(data.observations), flat(data.actions), flat(data.next_observations)).reshape(B, K)
            curiosity.update(flat(data.observations), flat(data.actions), flat(data.next_observations))
        actions_in = self._one_hot(data.actions)
        with torch.no_grad():
            next_actions = torch.stack([self.target_actors[j].sample(data.next_observations[:, j],
                                                                     args.gumbel_temperature)[0] for j in range(K)], 1)
        out = {}
        for i in range(K):
            critic, actor = self.critics[i], self.actors[i]
            # ---- critic i: y = r_i + gamma (1 - d) Q'_i(o', mu'(o')) ----
            with torch.no_grad():
                target_q = self.target_critics[i](data.next_observations, next_actions)
                y = rewards[:, i] + args.gamma * (1.0 - data.terminated) * target_q
            q = critic(data.observations, actions_in)
            critic_loss = F.mse_loss(q, y)
            self.critic_optimizers[i].zero_grad()
            critic_loss.backward()
            nn.utils.clip_grad_norm_(critic.parameters(), args.max_grad_norm)
            self.critic_optimizers[i].step()

            # ---- actor i: ascend Q_i with agent i's action from its policy, the others' from the buffer ----
            action_i, raw = actor.sample(data.observations[:, i], args.gumbel_temperature)
            joint = torch.cat([actions_in[:, :i], action_i[:, None], actions_in[:, i + 1:]], 1)
            actor_loss = -critic(data.observations, joint).mean() + args.actor_reg * raw.square().mean()
            self.actor_optimizers[i].zero_grad()
            actor_loss.backward()
            nn.utils.clip_grad_norm_(actor.parameters(), args.max_grad_norm)
            self.actor_optimizers[i].step()
            out[f"losses/agent_{i}/critic_loss"] = critic_loss.detach()
            out[f"losses/agent_{i}/actor_loss"] = actor_loss.detach()
            out[f"losses/agent_{i}/q_values"] = q.mean().detach()
        for net, target in zip(self.actors + self.critics, self.target_actors + self.target_critics):
            polyak_update(net, target, args.tau)
        return out


# ---------------------------------------------------------------------------------------------------
# Policy from a checkpoint (trader.rl.policy: backtests, evaluation, live)
# ---------------------------------------------------------------------------------------------------


def make_policy(spec: dict, weights: dict, device: str = "cpu"):
    """obs batch [B, K, D] (numpy) -> actions [B, K] from a checkpoint's policy spec and weights: each
    agent's argmax move or mean action."""
    actors = [Actor(spec["obs_dim"], spec["num_actions"], spec["action_dim"], tuple(spec["hidden_sizes"]))
              for _ in range(spec["num_agents"])]
    for i, actor in enumerate(actors):
        actor.load_state_dict(weights[f"actor_{i}"])
        actor.to(device)

    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, np.float32), device=device)
        a = torch.stack([actor.act_deterministic(x[:, i]) for i, actor in enumerate(actors)], 1)
        return a.cpu().numpy() if spec["num_actions"] else a.squeeze(-1).cpu().numpy().astype(np.float32)

    return policy


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------


def train(args: Args) -> dict:
    with Run.start(args, "maddpg", data_parallel=DATA_PARALLEL) as run:
        device, logger = run.device, run.logger

        # ---- env setup: obs [B, K, D], actions [B, K] ----
        runner = EnvRunner(make_env(args, args.num_envs, args.seed), args.seed)
        obs_space, act_space = runner.env.single_observation_space, runner.env.single_action_space
        if len(obs_space.shape) != 2:
            raise ValueError(f"env: MADDPG expects K agents' observations [K, D], got {obs_space} "
                             "(trader: --num-agents 2 or more)")
        K, obs_dim = obs_space.shape
        discrete = isinstance(act_space, gym.spaces.MultiDiscrete)
        num_actions = int(act_space.nvec[0]) if discrete else 0
        action_dim = 1

        # ---- networks and optimizers; curiosity; the replay buffer ----
        agents = MultiAgentDDPG(args, K, obs_dim, num_actions, device)
        curiosity = make_curiosity(args.curiosity, obs_dim, action_dim, num_actions, device)
        rb = ReplayBuffer(args.buffer_size, (K, obs_dim), (K,) if discrete else (K, action_dim), device,
                          action_dtype=torch.long if discrete else torch.float32, reward_shape=(K,))
        modules, optimizers = agents.modules(), agents.optimizers()

        # ---- start, or resume: the envs replay their logged actions, the learner reloads its state ----
        prev_done = np.zeros(args.num_envs, bool)  # NEXT_STEP: the coming step of these envs only resets them
        mine = run.rank_state
        if mine is None:
            obs = runner.reset()
        else:  # the checkpoint loads on the CPU; load_state_dict moves each state to its module's device
            obs = runner.replay(np.asarray(mine["env_actions"]), np.asarray(mine["obs"]))
            run.resumed.load_into(modules=modules)
            for name, opt in optimizers.items():
                opt.load_state_dict(run.resumed.state["trainer"]["optimizers"][name])
            rb.load_state_dict(run.resumed.state["replay_buffer"])
            load_curiosity_state(curiosity, run.resumed.state["trainer"]["curiosity"])
            prev_done = np.asarray(mine["prev_done"]).copy()
        stats, coverage = EpisodeStats(), Coverage()
        # ---- the acting path (as sac.py's): observations staged once per step in one of two buffers,
        # actions out through one host buffer, transitions written on the device (issue 18) ----
        n = args.num_envs
        staging = [HostStaging([obs.shape, (n, K), (n,)], [torch.float32] * 3, device) for _ in range(2)]
        action_out = HostStaging([(n, K)], [torch.long if discrete else torch.float32], device)
        obs_t, current = staging[0].stage(obs)[0], 0
        act = graphed(agents.act, obs_t) if args.cuda_graphs and graphs_available(device) else agents.act
        policy_spec = {"num_agents": K, "obs_dim": obs_dim, "num_actions": num_actions, "action_dim": action_dim,
                       "hidden_sizes": list(args.hidden_sizes)}

        def save(step: int, reason: str | None) -> str:
            """Weights as safetensors; optimizers and curiosity in state/trainer; RNG states, the env action
            log, the last observation in state/ranks; the replay buffer in state/replay_buffer."""
            return run.save(step, reason, modules=modules,
                            trainer={"optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                                     "curiosity": curiosity_state(curiosity)},
                            rank_state={"env_actions": runner.action_log(), "obs": obs_t.cpu().numpy(),
                                        "prev_done": prev_done.copy()},
                            metadata={"policy_spec": policy_spec}, extra_state={"replay_buffer": rb})

        global_step = run.begin()
        while global_step < args.total_timesteps:
            # ---- act: each agent samples from its own actor (decentralized execution) ----
            actions = act(obs_t)
            runner.send(action_out.fetch(actions if discrete else actions.squeeze(-1))[0])

            # ---- learn while the envs step ----
            step_after = global_step + args.num_envs
            if step_after > args.learning_starts and len(rb) > 0 and due(step_after, global_step, args.update_every):
                for tag, value in agents.update(rb.sample(args.batch_size), curiosity).items():
                    logger.scalar(tag, value, step_after)

            # ---- observe; store real transitions only (see sac.py: NEXT_STEP autoreset, truncation) ----
            next_obs, rewards, terminations, truncations, infos = runner.recv()
            global_step = step_after
            current = 1 - current  # the other buffer: obs_t, this step's observations, stays
            next_obs_t, rewards_t, terminations_t = staging[current].stage(next_obs, rewards, terminations)
            rb.add(obs_t, next_obs_t, actions, rewards_t, terminations_t, real_rows(prev_done, device))
            coverage.add(infos, ~prev_done)  # MPE cooperative navigation measures (per env step)
            prev_done = terminations | truncations
            obs_t = next_obs_t
            stats.log(logger, global_step, *stats.add(infos))

            # ---- logging; checkpoints; SIGTERM, SIGINT, spot notice: a final save, then stop ----
            if due(global_step, global_step - args.num_envs, 100 * args.num_envs):
                coverage.log(logger, global_step)
                logger.scalar("charts/SPS", run.sps(global_step), global_step)
            if run.end_iteration(global_step, save, stats.mean_return):
                break

        runner.env.close()
        return run.finish(save, modules, stats)


if __name__ == "__main__":
    print(train(parse_args(Args)))
