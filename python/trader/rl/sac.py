"""Soft actor-critic: continuous actions with a tanh-squashed Gaussian policy and automatic entropy
tuning (Haarnoja et al. 2018, "SAC: algorithms and applications"), and the discrete variant for
hold/buy/sell (Christodoulou 2019, "Soft actor-critic for discrete action settings"), in the shape of
CleanRL's sac_continuous_action.py / sac_atari.py: twin Q networks with polyak-averaged targets, delayed
policy updates, a replay buffer preallocated on the training device.

The env steps while the learner trains: actions are sent, the gradient steps run, then the results are
received (the C++ pool steps in its worker threads meanwhile).

    python -m trader.rl.sac --env-id Pendulum-v1 --total-timesteps 20000 --learning-starts 1000
    trader train --algo sac --env trader --actions continuous

One file for the algorithm, as CleanRL's (arguments, networks, targets and losses, the gradient step,
the policy of a checkpoint, the training loop), which is why it runs to about 400 lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trader.rl.args import CommonArgs
from trader.rl.buffers import ReplayBatch, ReplayBuffer, real_rows
from trader.rl.cuda_rollout import HostStaging, graphed, graphs_available, gumbel_max
from trader.rl.curiosity import curiosity_state, load_curiosity_state, make_curiosity
from trader.rl.envs import EnvRunner, SingleAgentSpaces, make_env, single_agent_spaces
from trader.rl.episodes import EpisodeStats
from trader.rl.nets import mlp, polyak_update
from trader.run.lifecycle import Run, due, parse_args

DATA_PARALLEL = False
"""one process: the replay buffer and the updates are not split over ranks"""

LOG_STD_MAX = 2
LOG_STD_MIN = -5


@dataclass
class Args(CommonArgs):
    total_timesteps: int = 1_000_000
    """total env steps of the experiment (all envs together)"""
    learning_rate: float = 3e-4
    """learning rate of the critics, the actor and the entropy temperature (Haarnoja et al. 2018, Table 1)"""
    num_envs: int = 1
    """number of parallel envs"""
    buffer_size: int = 1_000_000
    """replay buffer capacity (transitions)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """target smoothing coefficient (polyak)"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_starts: int = 5000
    """env steps of uniformly random actions before learning starts"""
    gradient_steps: int = 1
    """gradient steps per vector-env step"""
    policy_frequency: int = 2
    """critic updates per actor update (the actor then takes as many steps, TD3's delay as in CleanRL)"""
    target_network_frequency: int = 1
    """critic updates between target network updates"""
    alpha: float = 0.2
    """entropy temperature (its start value with --autotune)"""
    autotune: bool = True
    """tune the temperature towards a target entropy"""
    target_entropy_scale: float = 0.89
    """discrete: target entropy = scale * log(num actions) (Christodoulou 2019 uses 0.98; CleanRL 0.89)"""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """hidden layers of the actor and of each critic"""
    cuda_graphs: bool = True
    """on CUDA: the acting forward and sampling as a CUDA graph (trader.rl.cuda_rollout.capture); no effect
    on the CPU"""


# ---------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------


class SoftQNetwork(nn.Module):
    """Continuous: Q(s, a) -> [B]. Discrete: Q(s, .) -> [B, num_actions] (Christodoulou 2019, Sec. 3)."""

    def __init__(self, obs_dim: int, action_dim: int, num_actions: int, hidden=(256, 256)):
        super().__init__()
        self.discrete = num_actions > 0
        self.net = mlp(obs_dim + (0 if self.discrete else action_dim), hidden,
                              num_actions if self.discrete else 1, nn.ReLU)

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        if self.discrete:
            return self.net(x)
        return self.net(torch.cat([x, a], -1)).squeeze(-1)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy scaled to the action bounds (Haarnoja et al. 2018, App. C: the
    log-likelihood gets the change-of-variables term -sum log(scale * (1 - tanh(u)^2)))."""

    def __init__(self, obs_dim: int, action_dim: int, low: np.ndarray, high: np.ndarray, hidden=(256, 256)):
        super().__init__()
        self.trunk = mlp(obs_dim, hidden[:-1], hidden[-1], nn.ReLU)
        self.fc_mean = nn.Linear(hidden[-1], action_dim)
        self.fc_logstd = nn.Linear(hidden[-1], action_dim)
        self.register_buffer("action_scale", torch.tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.tensor((high + low) / 2.0, dtype=torch.float32))

    def forward(self, x: torch.Tensor):
        h = F.relu(self.trunk(x))
        mean = self.fc_mean(h)
        log_std = torch.tanh(self.fc_logstd(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)  # from SpinUp / Denis Yarats
        return mean, log_std

    def get_action(self, x: torch.Tensor):
        """(sampled action, its log-probability [B], deterministic action) via the reparameterization trick."""
        mean, log_std = self(x)
        # argument checks read their result on the host: on CUDA a sync per call, so only on the CPU
        normal = torch.distributions.Normal(mean, log_std.exp(), validate_args=x.device.type == "cpu")
        x_t = normal.rsample()
        y_t = torch.tanh(x_t)
        action = y_t * self.action_scale + self.action_bias
        log_prob = normal.log_prob(x_t) - torch.log(self.action_scale * (1 - y_t.pow(2)) + 1e-6)
        return action, log_prob.sum(-1), torch.tanh(mean) * self.action_scale + self.action_bias


class DiscreteActor(nn.Module):
    """Categorical policy; returns the full distribution, whose expectations replace sampling in the
    discrete losses (Christodoulou 2019, eqs. 10-12)."""

    def __init__(self, obs_dim: int, num_actions: int, hidden=(256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, hidden, num_actions, nn.ReLU)

    def get_action(self, x: torch.Tensor):
        """(sampled action, log pi(.|s) [B, A], pi(.|s) [B, A])."""
        logits = self.net(x)
        dist = torch.distributions.Categorical(logits=logits, validate_args=x.device.type == "cpu")  # as Actor's
        return dist.sample(), F.log_softmax(logits, -1), dist.probs


def sample_action(actor, x: torch.Tensor) -> torch.Tensor:
    """The acting sample, graph-safe (no host sync, RNG from torch.rand / torch.randn): the continuous
    actor's own reparameterized sample; for the discrete actor Gumbel-max over its logits (the same
    distribution as Categorical.sample, as trader.rl.cuda_rollout.sample_action_value)."""
    return actor.get_action(x)[0] if isinstance(actor, Actor) else gumbel_max(actor.net(x).float())


# ---------------------------------------------------------------------------------------------------
# Discrete targets and losses (pure functions, tested on hand-computed cases)
# ---------------------------------------------------------------------------------------------------


def discrete_soft_target(next_probs, next_log_probs, q1_next, q2_next, rewards, terminated, alpha: float,
                         gamma: float) -> torch.Tensor:
    """r + gamma (1 - d) sum_a' pi(a'|s') [min(Q1', Q2')(s', a') - alpha log pi(a'|s')]
    (Christodoulou 2019, eq. 10: the soft state value as an exact expectation over actions)."""
    v_next = (next_probs * (torch.min(q1_next, q2_next) - alpha * next_log_probs)).sum(-1)
    return rewards + gamma * (1.0 - terminated) * v_next


def discrete_actor_loss(probs, log_probs, q1, q2, alpha: float) -> torch.Tensor:
    """E_s sum_a pi(a|s) [alpha log pi(a|s) - min(Q1, Q2)(s, a)] (Christodoulou 2019, eq. 12)."""
    return (probs * (alpha * log_probs - torch.min(q1, q2))).sum(-1).mean()


# ---------------------------------------------------------------------------------------------------
# The learner: networks, optimizers, temperature, and one gradient step
# ---------------------------------------------------------------------------------------------------


class SoftActorCritic:
    """The actor, the twin critics and their polyak-averaged targets, their optimizers, the entropy
    temperature alpha (learned with --autotune) and the count of critic updates."""

    def __init__(self, args: Args, spaces: SingleAgentSpaces, device: torch.device):
        self.args, self.discrete = args, spaces.discrete
        obs_dim, action_dim, num_actions = spaces.obs_dim, spaces.action_dim, spaces.num_actions
        hidden = args.hidden_sizes
        if self.discrete:
            self.actor = DiscreteActor(obs_dim, num_actions, hidden).to(device)
        else:
            self.actor = Actor(obs_dim, action_dim, spaces.low, spaces.high, hidden).to(device)
        self.qf1, self.qf2, self.qf1_target, self.qf2_target = (
            SoftQNetwork(obs_dim, action_dim, num_actions, hidden).to(device) for _ in range(4))
        self.qf1_target.load_state_dict(self.qf1.state_dict())
        self.qf2_target.load_state_dict(self.qf2.state_dict())
        self.q_optimizer = torch.optim.Adam(list(self.qf1.parameters()) + list(self.qf2.parameters()),
                                            lr=args.learning_rate)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=args.learning_rate)
        # automatic entropy tuning: target -|A| (continuous, Haarnoja et al. 2018) or a fraction of the
        # largest entropy log|A| (discrete, Christodoulou 2019)
        self.target_entropy = (args.target_entropy_scale * float(np.log(num_actions)) if self.discrete
                               else -float(action_dim))
        self.log_alpha = torch.tensor([float(np.log(args.alpha))], device=device, requires_grad=True)
        self.a_optimizer = torch.optim.Adam([self.log_alpha], lr=args.learning_rate)
        # a tensor while tuned: reading it on the host would sync every actor step
        self.alpha = self.log_alpha.exp().detach() if args.autotune else args.alpha
        self.n_updates = 0

    def modules(self) -> dict[str, nn.Module]:
        """The networks, by their names in a checkpoint's weights."""
        return {"actor": self.actor, "qf1": self.qf1, "qf2": self.qf2, "qf1_target": self.qf1_target,
                "qf2_target": self.qf2_target}

    def state_dict(self) -> dict:
        """The optimizers and the temperature (a checkpoint's state/trainer)."""
        return {"q_optimizer": self.q_optimizer.state_dict(), "actor_optimizer": self.actor_optimizer.state_dict(),
                "a_optimizer": self.a_optimizer.state_dict(), "log_alpha": self.log_alpha.detach().cpu()}

    def load_state_dict(self, state: dict, n_updates: int) -> None:
        for opt, name in ((self.q_optimizer, "q_optimizer"), (self.actor_optimizer, "actor_optimizer"),
                          (self.a_optimizer, "a_optimizer")):
            opt.load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.alpha = self.log_alpha.exp().detach() if self.args.autotune else self.args.alpha
        self.n_updates = n_updates

    def update(self, data: ReplayBatch, curiosity) -> dict:
        """One gradient step of the critics; the actor and temperature every policy_frequency steps. With
        curiosity, its bonus joins the rewards and the module takes a step on the same batch. The losses
        come back as device tensors (read when logged: no host sync per step)."""
        args, discrete, actor, qf1, qf2 = self.args, self.discrete, self.actor, self.qf1, self.qf2
        alpha = self.alpha
        rewards = data.rewards
        if curiosity is not None:
            rewards = rewards + args.curiosity_coef * curiosity.reward(data.observations, data.actions,
                                                                      data.next_observations)
            curiosity.update(data.observations, data.actions, data.next_observations)

        # ---- critic ----
        with torch.no_grad():
            if discrete:
                _, next_log_pi, next_probs = actor.get_action(data.next_observations)
                next_q_value = discrete_soft_target(next_probs, next_log_pi, self.qf1_target(data.next_observations),
                                                    self.qf2_target(data.next_observations), rewards, data.terminated,
                                                    alpha, args.gamma)
            else:
                next_actions, next_log_pi, _ = actor.get_action(data.next_observations)
                min_qf_next = torch.min(self.qf1_target(data.next_observations, next_actions),
                                        self.qf2_target(data.next_observations, next_actions)) - alpha * next_log_pi
                next_q_value = rewards + (1 - data.terminated) * args.gamma * min_qf_next
        if discrete:
            qf1_a_values = qf1(data.observations).gather(1, data.actions.long()[:, None]).squeeze(1)
            qf2_a_values = qf2(data.observations).gather(1, data.actions.long()[:, None]).squeeze(1)
        else:
            qf1_a_values = qf1(data.observations, data.actions)
            qf2_a_values = qf2(data.observations, data.actions)
        qf1_loss = F.mse_loss(qf1_a_values, next_q_value)
        qf2_loss = F.mse_loss(qf2_a_values, next_q_value)
        qf_loss = qf1_loss + qf2_loss
        self.q_optimizer.zero_grad()
        qf_loss.backward()
        self.q_optimizer.step()
        self.n_updates += 1
        out = {"losses/qf1_values": qf1_a_values.mean().detach(), "losses/qf2_values": qf2_a_values.mean().detach(),
               "losses/qf1_loss": qf1_loss.detach(), "losses/qf2_loss": qf2_loss.detach(),
               "losses/qf_loss": qf_loss.detach() / 2.0}

        # ---- actor and temperature (delayed, TD3-style, with as many steps to compensate) ----
        if self.n_updates % args.policy_frequency == 0:
            for _ in range(args.policy_frequency):
                if discrete:
                    _, log_pi, probs = actor.get_action(data.observations)
                    with torch.no_grad():
                        q1, q2 = qf1(data.observations), qf2(data.observations)
                    actor_loss = discrete_actor_loss(probs, log_pi, q1, q2, alpha)
                else:
                    pi, log_pi, _ = actor.get_action(data.observations)
                    min_qf_pi = torch.min(qf1(data.observations, pi), qf2(data.observations, pi))
                    actor_loss = (alpha * log_pi - min_qf_pi).mean()
                self.actor_optimizer.zero_grad()
                actor_loss.backward()
                self.actor_optimizer.step()
                out["losses/actor_loss"] = actor_loss.detach()

                if args.autotune:
                    with torch.no_grad():
                        if discrete:
                            _, log_pi, probs = actor.get_action(data.observations)
                            entropy_gap = (probs * (log_pi + self.target_entropy)).sum(-1)
                        else:
                            entropy_gap = actor.get_action(data.observations)[1] + self.target_entropy
                    alpha_loss = (-self.log_alpha.exp() * entropy_gap).mean()
                    self.a_optimizer.zero_grad()
                    alpha_loss.backward()
                    self.a_optimizer.step()
                    alpha = self.alpha = self.log_alpha.exp().detach()
                    out["losses/alpha_loss"] = alpha_loss.detach()

        # ---- target networks (polyak) ----
        if self.n_updates % args.target_network_frequency == 0:
            polyak_update(qf1, self.qf1_target, args.tau)
            polyak_update(qf2, self.qf2_target, args.tau)
        return out


# ---------------------------------------------------------------------------------------------------
# Policy from a checkpoint (trader.rl.policy: backtests, evaluation, live)
# ---------------------------------------------------------------------------------------------------


def make_policy(spec: dict, weights: dict, device: str = "cpu"):
    """obs batch (numpy) -> action batch (numpy) from a checkpoint's policy spec and weights: the mean
    action (continuous) or the argmax (discrete)."""
    hidden = tuple(spec["hidden_sizes"])
    if spec["num_actions"]:
        actor = DiscreteActor(spec["obs_dim"], spec["num_actions"], hidden)
    else:
        actor = Actor(spec["obs_dim"], spec["action_dim"], np.array(spec["low"]), np.array(spec["high"]), hidden)
    actor.load_state_dict(weights["actor"])
    actor.to(device)

    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, np.float32), device=device)
        if spec["num_actions"]:
            return actor.net(x).argmax(-1).cpu().numpy()
        return actor.get_action(x)[2].cpu().numpy().astype(np.float32)

    return policy


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------


def train(args: Args) -> dict:
    if args.env_id == "trader" and args.num_agents != 1:
        raise ValueError("num_agents: SAC trains one agent per env; use --algo maddpg for several")
    with Run.start(args, "sac", data_parallel=DATA_PARALLEL) as run:
        device, logger = run.device, run.logger

        # ---- env setup ----
        runner = EnvRunner(make_env(args, args.num_envs, args.seed), args.seed)
        spaces = single_agent_spaces(runner.env, "SAC")
        discrete, num_actions, act_shape = spaces.discrete, spaces.num_actions, spaces.act_shape

        # ---- networks, optimizers, temperature; curiosity; the replay buffer ----
        sac = SoftActorCritic(args, spaces, device)
        curiosity = make_curiosity(args.curiosity, spaces.obs_dim, spaces.action_dim, num_actions, device)
        rb = ReplayBuffer(args.buffer_size, (spaces.obs_dim,), act_shape, device,
                          action_dtype=torch.long if discrete else torch.float32)
        low = None if discrete else torch.as_tensor(spaces.low, device=device)
        high = None if discrete else torch.as_tensor(spaces.high, device=device)
        modules = sac.modules()

        # ---- start, or resume: the envs replay their logged actions, the learner reloads its state ----
        prev_done = np.zeros(args.num_envs, bool)  # NEXT_STEP: the coming step of these envs only resets them
        mine = run.rank_state
        if mine is None:
            obs = runner.reset()
        else:  # the checkpoint loads on the CPU; load_state_dict moves each state to its module's device
            obs = runner.replay(np.asarray(mine["env_actions"]), np.asarray(mine["obs"]))
            run.resumed.load_into(modules=modules)
            sac.load_state_dict(run.resumed.state["trainer"], int(run.resumed.metadata["n_updates"]))
            rb.load_state_dict(run.resumed.state["replay_buffer"])
            load_curiosity_state(curiosity, run.resumed.state["trainer"]["curiosity"])
            prev_done = np.asarray(mine["prev_done"]).copy()
        stats = EpisodeStats()
        policy_spec = {**spaces.policy_spec(), "hidden_sizes": list(args.hidden_sizes)}
        # ---- the acting path: observations staged once per step (two buffers: a step's and the next's),
        # actions out through one host buffer, transitions written on the device; no host sync but the
        # actions' copy, which the env needs (issue 18) ----
        n, action_dtype = args.num_envs, torch.long if discrete else torch.float32
        staging = [HostStaging([obs.shape, (n,), (n,)], [torch.float32] * 3, device) for _ in range(2)]
        action_out = HostStaging([(n, *act_shape)], [action_dtype], device)
        obs_t, current = staging[0].stage(obs)[0], 0
        act = graphed(partial(sample_action, sac.actor), obs_t) if args.cuda_graphs and graphs_available(device) \
            else (lambda x: sac.actor.get_action(x)[0])

        def save(step: int, reason: str | None) -> str:
            """Weights as safetensors; optimizers, temperature, curiosity in state/trainer; RNG states, the
            env action log, the last observation in state/ranks; the replay buffer (its transitions, as
            tensors) in state/replay_buffer: a resume continues exactly."""
            return run.save(step, reason, modules=modules,
                            trainer={**sac.state_dict(), "curiosity": curiosity_state(curiosity)},
                            rank_state={"env_actions": runner.action_log(), "obs": obs_t.cpu().numpy(),
                                        "prev_done": prev_done.copy()},
                            metadata={"n_updates": sac.n_updates, "policy_spec": policy_spec},
                            extra_state={"replay_buffer": rb})

        global_step, losses = run.begin(), {}
        while global_step < args.total_timesteps:
            # ---- act: random until learning starts, then the policy's samples ----
            if global_step < args.learning_starts:
                if discrete:
                    actions = torch.randint(num_actions, (args.num_envs,), device=device)
                else:
                    actions = low + (high - low) * torch.rand((args.num_envs, *act_shape), device=device)
            else:
                with torch.no_grad():
                    actions = act(obs_t)
            runner.send(action_out.fetch(actions)[0])

            # ---- learn while the envs step ----
            if global_step >= args.learning_starts and len(rb) > 0:
                for _ in range(args.gradient_steps):
                    losses = sac.update(rb.sample(args.batch_size), curiosity)

            # ---- observe; store real transitions only ----
            next_obs, rewards, terminations, truncations, infos = runner.recv()
            global_step += args.num_envs
            # NEXT_STEP autoreset: the step right after an episode ended only reset the env (its action
            # was ignored), so it is no transition. After a truncation next_obs is the true final
            # observation, and `terminated` alone stops the bootstrap (truncation is not death).
            current = 1 - current  # the other buffer: obs_t, this step's observations, stays
            next_obs_t, rewards_t, terminations_t = staging[current].stage(next_obs, rewards, terminations)
            rb.add(obs_t, next_obs_t, actions, rewards_t, terminations_t, real_rows(prev_done, device))
            prev_done = terminations | truncations
            obs_t = next_obs_t
            stats.log(logger, global_step, *stats.add(infos))

            # ---- logging; checkpoints; SIGTERM, SIGINT, spot notice: a final save, then stop ----
            if losses and due(global_step, global_step - args.num_envs, 100 * args.num_envs):
                for tag, value in losses.items():
                    logger.scalar(tag, value, global_step)
                logger.scalar("losses/alpha", sac.alpha, global_step)
                logger.scalar("charts/SPS", run.sps(global_step), global_step)
            if run.end_iteration(global_step, save, stats.mean_return):
                break

        runner.env.close()
        return run.finish(save, modules, stats)


if __name__ == "__main__":
    print(train(parse_args(Args)))
