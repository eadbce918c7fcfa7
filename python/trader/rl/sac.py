"""Soft actor-critic: continuous actions with a tanh-squashed Gaussian policy and automatic entropy
tuning (Haarnoja et al. 2018, "SAC: algorithms and applications"), and the discrete variant for
hold/buy/sell (Christodoulou 2019, "Soft actor-critic for discrete action settings"), in the shape of
CleanRL's sac_continuous_action.py / sac_atari.py: twin Q networks with polyak-averaged targets, delayed
policy updates, a replay buffer preallocated on the training device.

The env steps while the learner trains: actions are sent, the gradient steps run, then the results are
received (the C++ pool steps in its worker threads meanwhile).

    python -m trader.rl.sac --env-id Pendulum-v1 --total-timesteps 20000 --learning-starts 1000
    trader train --algo sac --env trader --continuous
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trader.rl import common, distributed
from trader.rl.common import CommonArgs
from trader.rl.envs import EnvRunner, make_env

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


# ---------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------


class SoftQNetwork(nn.Module):
    """Continuous: Q(s, a) -> [B]. Discrete: Q(s, .) -> [B, num_actions] (Christodoulou 2019, Sec. 3)."""

    def __init__(self, obs_dim: int, action_dim: int, num_actions: int, hidden=(256, 256)):
        super().__init__()
        self.discrete = num_actions > 0
        self.net = common.mlp(obs_dim + (0 if self.discrete else action_dim), hidden,
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
        self.trunk = common.mlp(obs_dim, hidden[:-1], hidden[-1], nn.ReLU)
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
        normal = torch.distributions.Normal(mean, log_std.exp())
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
        self.net = common.mlp(obs_dim, hidden, num_actions, nn.ReLU)

    def get_action(self, x: torch.Tensor):
        """(sampled action, log pi(.|s) [B, A], pi(.|s) [B, A])."""
        logits = self.net(x)
        dist = torch.distributions.Categorical(logits=logits)
        return dist.sample(), F.log_softmax(logits, -1), dist.probs


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
# Policy from a checkpoint
# ---------------------------------------------------------------------------------------------------


def load_policy(path, device: str = "cpu"):
    """obs batch (numpy) -> action batch (numpy): the mean action (continuous) or the argmax (discrete).
    `path`: a run folder, a checkpoint store, one checkpoint in it or s3://..."""
    ckpt = common.load_checkpoint(path, state=False)
    spec = ckpt.metadata["policy_spec"]
    hidden = tuple(spec["hidden_sizes"])
    if spec["num_actions"]:
        actor = DiscreteActor(spec["obs_dim"], spec["num_actions"], hidden)
    else:
        actor = Actor(spec["obs_dim"], spec["action_dim"], np.array(spec["low"]), np.array(spec["high"]), hidden)
    actor.load_state_dict(ckpt.weights["actor"])
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
    if distributed.under_torchrun():
        raise ValueError("SAC: data-parallel training (--nproc, torchrun) is supported for ppo only")
    dist = distributed.Dist()
    device = common.setup_torch(args)

    # ---- env setup ----
    runner = EnvRunner(make_env(args, args.num_envs, args.seed), args.seed)
    obs_space, act_space = runner.env.single_observation_space, runner.env.single_action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"env: SAC expects flat Box observations, got {obs_space}")
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise ValueError(f"env: SAC expects a Discrete or Box action space, got {act_space}")
    discrete = isinstance(act_space, gym.spaces.Discrete)
    obs_dim = obs_space.shape[0]
    num_actions = int(act_space.n) if discrete else 0
    action_dim = 1 if discrete else int(np.prod(act_space.shape))
    act_shape = () if discrete else act_space.shape

    # ---- networks, optimizers, temperature ----
    if discrete:
        actor = DiscreteActor(obs_dim, num_actions, args.hidden_sizes).to(device)
    else:
        actor = Actor(obs_dim, action_dim, act_space.low, act_space.high, args.hidden_sizes).to(device)
    qf1, qf2, qf1_target, qf2_target = (SoftQNetwork(obs_dim, action_dim, num_actions, args.hidden_sizes).to(device)
                                        for _ in range(4))
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    q_optimizer = torch.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.learning_rate)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate)
    # automatic entropy tuning: target -|A| (continuous, Haarnoja et al. 2018) or a fraction of the
    # largest entropy log|A| (discrete, Christodoulou 2019)
    target_entropy = (args.target_entropy_scale * float(np.log(num_actions))) if discrete else -float(action_dim)
    log_alpha = torch.tensor([float(np.log(args.alpha))], device=device, requires_grad=True)
    a_optimizer = torch.optim.Adam([log_alpha], lr=args.learning_rate)
    alpha = log_alpha.exp().item() if args.autotune else args.alpha
    curiosity = common.make_curiosity(args.curiosity, obs_dim, action_dim, num_actions, device)
    rb = common.ReplayBuffer(args.buffer_size, (obs_dim,), act_shape, device,
                             action_dtype=torch.long if discrete else torch.float32)
    low = None if discrete else torch.as_tensor(act_space.low, device=device)
    high = None if discrete else torch.as_tensor(act_space.high, device=device)

    # ---- start, or resume: the envs replay their logged actions, the learner reloads its state ----
    global_step, n_updates = 0, 0
    prev_done = np.zeros(args.num_envs, bool)  # NEXT_STEP: the coming step of these envs only resets them
    # the checkpoint loads on the CPU; load_state_dict moves each state to its module's device
    resumed_from, ckpt = common.resume_point(args, "sac", dist)
    modules = {"actor": actor, "qf1": qf1, "qf2": qf2, "qf1_target": qf1_target, "qf2_target": qf2_target}
    if ckpt is None:
        obs = runner.reset()
    else:
        mine, trainer = ckpt.state["ranks"][0], ckpt.state["trainer"]
        obs = runner.replay(np.asarray(mine["env_actions"]), np.asarray(mine["obs"]))
        ckpt.load_into(modules=modules)
        for opt, name in ((q_optimizer, "q_optimizer"), (actor_optimizer, "actor_optimizer"),
                          (a_optimizer, "a_optimizer")):
            opt.load_state_dict(trainer[name])
        with torch.no_grad():
            log_alpha.copy_(trainer["log_alpha"])
        alpha = log_alpha.exp().item() if args.autotune else args.alpha
        rb.load_state_dict(ckpt.state["replay_buffer"])
        common.load_curiosity_state(curiosity, trainer["curiosity"])
        prev_done = np.asarray(mine["prev_done"]).copy()
        global_step, n_updates = int(ckpt.metadata["step"]), int(ckpt.metadata["n_updates"])
        common.set_rng_state(mine["rng"])
    run_dir = common.run_folder_for(args, "sac", ckpt, dist)
    store = common.checkpoint_store_for(args, run_dir, resumed_from)
    print(f"run folder: {run_dir}")
    print(f"checkpoints: {store.uri}" + (f" (resumed from {ckpt.ref.uri})" if ckpt is not None else ""))
    logger = common.Logger(run_dir, args, args.track, purge_step=global_step if ckpt else None)
    stats = common.EpisodeStats()
    policy_spec = {"obs_dim": obs_dim, "num_actions": num_actions, "action_dim": action_dim,
                   "hidden_sizes": list(args.hidden_sizes),
                   "low": None if discrete else act_space.low.tolist(),
                   "high": None if discrete else act_space.high.tolist()}

    def save(step: int, reason: str | None = None) -> str:
        """Weights as safetensors; optimizers, temperature, curiosity in state/trainer; RNG states, the
        env action log, the last observation in state/ranks; the replay buffer (its transitions, as
        tensors) in state/replay_buffer: a resume continues exactly."""
        trainer = {"q_optimizer": q_optimizer.state_dict(), "actor_optimizer": actor_optimizer.state_dict(),
                   "a_optimizer": a_optimizer.state_dict(), "log_alpha": log_alpha.detach().cpu(),
                   "curiosity": common.curiosity_state(curiosity)}
        rank_state = {"rng": common.rng_state(), "env_actions": runner.action_log(), "obs": np.array(obs),
                      "prev_done": prev_done.copy()}
        metadata = {"algo": "sac", "n_updates": n_updates, "args": common.args_to_dict(args),
                    "run_dir": str(run_dir), "policy_spec": policy_spec, "reason": reason}
        return common.save_checkpoint(store, step, dist, modules=modules, trainer=trainer, rank_state=rank_state,
                                      metadata=metadata, extra_state={"replay_buffer": rb})

    def update() -> dict:
        """One gradient step of the critics; the actor and temperature every policy_frequency steps."""
        nonlocal alpha, n_updates
        data = rb.sample(args.batch_size)
        rewards = data.rewards
        if curiosity is not None:
            rewards = rewards + args.curiosity_coef * curiosity.reward(data.observations, data.actions,
                                                                      data.next_observations)
            curiosity.update(data.observations, data.actions, data.next_observations)

        # ---- critic ----
        with torch.no_grad():
            if discrete:
                _, next_log_pi, next_probs = actor.get_action(data.next_observations)
                next_q_value = discrete_soft_target(next_probs, next_log_pi, qf1_target(data.next_observations),
                                                    qf2_target(data.next_observations), rewards, data.terminated,
                                                    alpha, args.gamma)
            else:
                next_actions, next_log_pi, _ = actor.get_action(data.next_observations)
                min_qf_next = torch.min(qf1_target(data.next_observations, next_actions),
                                        qf2_target(data.next_observations, next_actions)) - alpha * next_log_pi
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
        q_optimizer.zero_grad()
        qf_loss.backward()
        q_optimizer.step()
        n_updates += 1
        out = {"losses/qf1_values": qf1_a_values.mean().item(), "losses/qf2_values": qf2_a_values.mean().item(),
               "losses/qf1_loss": qf1_loss.item(), "losses/qf2_loss": qf2_loss.item(),
               "losses/qf_loss": qf_loss.item() / 2.0}

        # ---- actor and temperature (delayed, TD3-style, with as many steps to compensate) ----
        if n_updates % args.policy_frequency == 0:
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
                actor_optimizer.zero_grad()
                actor_loss.backward()
                actor_optimizer.step()
                out["losses/actor_loss"] = actor_loss.item()

                if args.autotune:
                    with torch.no_grad():
                        if discrete:
                            _, log_pi, probs = actor.get_action(data.observations)
                            entropy_gap = (probs * (log_pi + target_entropy)).sum(-1)
                        else:
                            entropy_gap = actor.get_action(data.observations)[1] + target_entropy
                    alpha_loss = (-log_alpha.exp() * entropy_gap).mean()
                    a_optimizer.zero_grad()
                    alpha_loss.backward()
                    a_optimizer.step()
                    alpha = log_alpha.exp().item()
                    out["losses/alpha_loss"] = alpha_loss.item()

        # ---- target networks (polyak) ----
        if n_updates % args.target_network_frequency == 0:
            common.polyak_update(qf1, qf1_target, args.tau)
            common.polyak_update(qf2, qf2_target, args.tau)
        return out

    pbar = common.progress_bar(args, global_step)
    start_time, start_step, last_saved = time.time(), global_step, global_step
    losses: dict = {}
    final, interrupted = None, None
    with distributed.watcher(args.spot_metadata_url, args.spot_poll_s) as watch:
        while global_step < args.total_timesteps:
            # ---- act: random until learning starts, then the policy's samples ----
            if global_step < args.learning_starts:
                if discrete:
                    actions = torch.randint(num_actions, (args.num_envs,), device=device)
                else:
                    actions = low + (high - low) * torch.rand((args.num_envs, *act_shape), device=device)
            else:
                with torch.no_grad():
                    actions = actor.get_action(torch.tensor(obs, dtype=torch.float32, device=device))[0]
            runner.send(actions.cpu().numpy())

            # ---- learn while the envs step ----
            if global_step >= args.learning_starts and len(rb) > 0:
                for _ in range(args.gradient_steps):
                    losses = update()

            # ---- observe; store real transitions only ----
            next_obs, rewards, terminations, truncations, infos = runner.recv()
            global_step += args.num_envs
            # NEXT_STEP autoreset: the step right after an episode ended only reset the env (its action
            # was ignored), so it is no transition. After a truncation next_obs is the true final
            # observation, and `terminated` alone stops the bootstrap (truncation is not death).
            real = ~prev_done
            rb.add(obs[real], next_obs[real], actions.cpu().numpy()[real], rewards[real], terminations[real])
            prev_done = terminations | truncations
            obs = np.array(next_obs)  # the pool's arrays are overwritten by the next step
            stats.log(logger, global_step, *stats.add(infos))
            pbar.update(args.num_envs)

            # ---- logging, checkpoints ----
            if losses and common.due(global_step, global_step - args.num_envs, 100 * args.num_envs):
                for tag, value in losses.items():
                    logger.scalar(tag, value, global_step)
                logger.scalar("losses/alpha", alpha, global_step)
                sps = int((global_step - start_step) / max(time.time() - start_time, 1e-9))
                logger.scalar("charts/SPS", sps, global_step)
                pbar.set_postfix(ret=f"{stats.mean_return:.3g}", sps=sps, refresh=False)
            # ---- SIGTERM, SIGINT, spot notice: a final save, then stop ----
            if watch.should_stop:
                interrupted = watch.reason
                print(f"\n{interrupted}: stopping at step {global_step}, after a final checkpoint", flush=True)
                final = save(global_step, reason=interrupted)
                break
            if common.due(global_step, last_saved, args.save_freq):
                final = save(global_step)
                last_saved = global_step

    if interrupted is None:
        final = save(global_step)
    pbar.close()
    logger.close()
    runner.env.close()
    return common.finish(args, dist, stats, modules, run_dir, store, final, interrupted, global_step, start_step,
                         start_time)


if __name__ == "__main__":
    print(train(common.parse_args(Args)))
