"""Proximal policy optimization (Schulman et al. 2017) with a categorical policy for discrete actions
and a diagonal Gaussian for continuous ones, in the shape of CleanRL's ppo.py / ppo_continuous_action.py:
rollout buffers (steps, envs, ...), GAE, clipped surrogate, optional value clipping, entropy bonus,
gradient-norm clipping, annealed learning rate; flattened batch `b_*`, minibatch `mb_*`.

All envs act from one batched forward pass per step. With --num-env-groups 2 the envs step in two
groups, pipelined: while one group steps (in the C++ pool's worker threads) the policy acts for the
other, so inference does not leave the env idle; on a 2-core machine one group is faster.

    python -m trader.rl.ppo --env-id CartPole-v1 --total-timesteps 100000
    trader train --algo ppo --env trader --num-envs 64

One file for the algorithm, as CleanRL's (arguments, network, advantages and losses, the policy of a
checkpoint, the training loop), which is why it runs past 400 lines; the run's lifecycle is
trader.run.lifecycle's, the shared pieces are in this package's args, nets, curiosity, envs, episodes.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Categorical, Normal

from trader.rl.args import CommonArgs
from trader.rl.cuda_rollout import GroupStep, PageLocked, capture, graphs_available
from trader.rl.curiosity import curiosity_state, load_curiosity_state, make_curiosity
from trader.rl.envs import EnvRunner, make_env, single_agent_spaces
from trader.rl.episodes import EpisodeStats
from trader.rl.nets import RunningMeanStd, mlp
from trader.run import distributed
from trader.run.lifecycle import Run, parse_args
from trader.sim.spec import abstain_log_probs

DATA_PARALLEL = True
"""trains under torchrun / --nproc, one rank a process (gradients averaged over the ranks)"""


@dataclass
class Args(CommonArgs):
    total_timesteps: int = 500_000
    """total env steps of the experiment (all envs together)"""
    learning_rate: float = 2.5e-4
    """learning rate of the optimizer"""
    num_envs: int = 4
    """number of parallel envs"""
    num_env_groups: int = 1
    """split the envs into this many groups that step in turn: while one group steps (the C++ pool's
    threads) the policy acts for the next, so the env is not idle during inference (envpool's
    double buffering). 2 pays off with --num-threads >= 2 on the trader env"""
    num_steps: int = 128
    """steps per env in each rollout"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalized advantage estimation"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """epochs over each rollout"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""
    clip_coef: float = 0.2
    """surrogate clipping coefficient"""
    clip_vloss: bool = True
    """clip the value loss as the surrogate (Schulman et al.'s baselines; Engstrom et al. 2020 find it optional)"""
    ent_coef: float = 0.01
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient norm clip"""
    target_kl: float | None = None
    """stop the epochs of an update early past this approximate KL"""
    norm_obs: bool = False
    """normalize observations by running statistics (CleanRL's continuous PPO wraps NormalizeObservation)"""
    norm_reward: bool = False
    """scale rewards by the running std of discounted returns (gymnasium's NormalizeReward)"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden layers of the actor and of the critic"""
    cuda_graphs: bool = True
    """on CUDA: the rollout's policy forward and sampling as a CUDA graph, step results and actions through
    pinned host buffers with non-blocking copies (trader.rl.cuda_rollout); no effect on the CPU"""
    bf16: bool = False
    """on CUDA: bf16 autocast for the networks' matmuls, in the rollout and in the update; no effect on the CPU"""
    abstain_prior: float = 0.0
    """trader env, --actions quote: the untrained policy quotes nothing on each side with this probability, the
    quotes quote_sides allows sharing the rest (--quote-flatten: flatten with 1 - this), so an agent starts near
    flat and its argmax quotes only where training moved it (issue 13). 0: off (the orthogonal init's policy)"""
    quote_sides: str = "any"
    """trader env, --actions quote: the quotes allowed: any; both (two-sided, or none); symmetric (one offset both
    sides, or none); lean (offsets one level apart, or none); the others' logits stay -inf for good (issue 13)"""


# ---------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------


class Agent(nn.Module):
    """Separate actor and critic MLPs (tanh, orthogonal init: 0.01 on the policy head, 1 on the value
    head). Discrete: logits of a Categorical. Continuous: mean of a Normal with a state-independent
    learned log std; actions are sampled unbounded and clipped to the space only when sent to the env."""

    def __init__(self, obs_dim: int, num_actions: int, action_dim: int, hidden=(64, 64)):
        super().__init__()
        self.discrete = num_actions > 0
        self.critic = mlp(obs_dim, hidden, 1, nn.Tanh, out_std=1.0)
        if self.discrete:
            self.actor = mlp(obs_dim, hidden, num_actions, nn.Tanh, out_std=0.01)
        else:
            self.actor_mean = mlp(obs_dim, hidden, action_dim, nn.Tanh, out_std=0.01)
            self.actor_logstd = nn.Parameter(torch.zeros(1, action_dim))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1).float()

    def forward(self, x: torch.Tensor, action: torch.Tensor | None = None):
        """get_action_and_value (what DistributedDataParallel calls)."""
        return self.get_action_and_value(x, action)

    def distribution(self, x: torch.Tensor):
        # argument checks read their result on the host: on CUDA a sync per minibatch, so only on the CPU
        check = x.device.type == "cpu"
        if self.discrete:  # float32 under bf16 autocast (a no-op without)
            return Categorical(logits=self.actor(x).float(), validate_args=check)
        mean = self.actor_mean(x).float()
        return Normal(mean, self.actor_logstd.expand_as(mean).exp(), validate_args=check)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        dist = self.distribution(x)
        if action is None:
            action = dist.sample()
        if self.discrete:
            return action, dist.log_prob(action), dist.entropy(), self.get_value(x)
        return action, dist.log_prob(action).sum(-1), dist.entropy().sum(-1), self.get_value(x)

    def act_deterministic(self, x: torch.Tensor) -> torch.Tensor:
        return self.actor(x).argmax(-1) if self.discrete else self.actor_mean(x)


# ---------------------------------------------------------------------------------------------------
# Advantages and losses (pure functions, tested on hand-computed cases)
# ---------------------------------------------------------------------------------------------------


def gae(rewards: torch.Tensor, values: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over a rollout [T, N] of NEXT_STEP
    vector envs; values[t] = V(obs[t]), next_value = V(obs after the last step). Returns
    (advantages, returns = advantages + values).

    Under NEXT_STEP autoreset the observation after a terminated or truncated step is the episode's
    final observation (the reset comes one step later), so V(s_{t+1}) is always values[t+1]:
        delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},   done = terminated | truncated
    A truncation (time limit) still bootstraps from the final observation (Pardo et al. 2018, "Time
    limits in RL"); a termination does not; no credit flows across an episode's end. The autoreset
    step that follows a done step is no transition: its advantage means nothing and the caller masks
    it out of the losses."""
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        next_v = next_value if t == T - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_v * (1.0 - terminated[t]) - values[t]
        done = torch.maximum(terminated[t], truncated[t])
        last = delta + gamma * gae_lambda * (1.0 - done) * last
        advantages[t] = last
    return advantages, advantages + values



def policy_loss(logratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """Clipped surrogate objective, as a loss (Schulman et al. 2017, eq. 7):
    mean(max(-A * r, -A * clip(r, 1 - eps, 1 + eps))), r = pi(a|s) / pi_old(a|s)."""
    ratio = logratio.exp()
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(pg_loss1, pg_loss2).mean()


def value_loss(newvalue: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_coef: float,
               clip_vloss: bool) -> torch.Tensor:
    """0.5 * mean((V - R)^2), or with clipping 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old) - R)^2))."""
    v_loss_unclipped = (newvalue - returns) ** 2
    if not clip_vloss:
        return 0.5 * v_loss_unclipped.mean()
    v_clipped = old_values + torch.clamp(newvalue - old_values, -clip_coef, clip_coef)
    v_loss_clipped = (v_clipped - returns) ** 2
    return 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()


def scale_rewards(rewards: torch.Tensor, valid: torch.Tensor, done: torch.Tensor, discounted_return: torch.Tensor,
                  return_rms: RunningMeanStd, gamma: float, dist) -> None:
    """--norm-reward over a rollout [T, N], in place: rewards divided by the running std of the discounted
    returns (kept per env across rollouts in `discounted_return`, reset at episode ends) and clipped to
    [-10, 10], as gymnasium's NormalizeReward; autoreset steps (not `valid`) stay out of the statistics,
    which take every rank's returns (`dist`, trader.run.distributed)."""
    prior = distributed.snapshot_stats(return_rms)
    for t in range(len(rewards)):
        discounted_return.mul_(gamma).add_(rewards[t])
        return_rms.update(discounted_return[valid[t]])
        discounted_return.mul_(1.0 - done[t])
    dist.sync_running_stats(return_rms, prior)
    rewards.div_(torch.sqrt(return_rms.var + 1e-8)).clamp_(-10.0, 10.0)


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns): how much of the returns the value function explains
    (on the tensors' device: a copy to the host of millions of values per iteration would cost more)."""
    var_y = returns.var(unbiased=False).item()
    return np.nan if var_y == 0 else 1 - (returns - values).var(unbiased=False).item() / var_y


# ---------------------------------------------------------------------------------------------------
# Policy from a checkpoint (trader.rl.policy: backtests, evaluation, live)
# ---------------------------------------------------------------------------------------------------


def restore(spec: dict, weights: dict, device: str = "cpu"):
    """(Agent, obs -> the agent's input: obs as a tensor, normalized when the run normalized) from a
    checkpoint's policy spec and weights."""
    agent = Agent(spec["obs_dim"], spec["num_actions"], spec["action_dim"], tuple(spec["hidden_sizes"])).to(device)
    agent.load_state_dict(weights["agent"])
    obs_rms = RunningMeanStd((spec["obs_dim"],)).to(device)
    if "obs_rms" in weights:
        obs_rms.load_state_dict(weights["obs_rms"])

    def inputs(obs: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs, np.float32), device=device)
        return obs_rms.normalize(x) if spec["norm_obs"] else x

    return agent, inputs


def make_policy(spec: dict, weights: dict, device: str = "cpu"):
    """obs batch (numpy) -> action batch (numpy) from a checkpoint's policy spec and weights: argmax of
    the logits or the mean, clipped to the action space."""
    agent, inputs = restore(spec, weights, device)

    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        a = agent.act_deterministic(inputs(obs)).cpu().numpy()
        return a if agent.discrete else np.clip(a, spec["low"], spec["high"]).astype(np.float32)

    return policy


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------


def train(args: Args) -> dict:
    """Train; under torchrun (or `trader train --nproc N`) as one rank of a data-parallel run: every rank
    steps --num-envs envs of its own (seeds seed + rank * 10_000 + i), gradients are averaged over the
    ranks, and global_step / total_timesteps / save_freq count the env steps of all ranks together (one
    iteration is num_envs * num_steps * world_size steps). See trader.run.distributed."""
    if args.num_envs % args.num_env_groups:
        raise ValueError(f"num_env_groups: {args.num_env_groups} does not divide num_envs {args.num_envs}")
    if args.env_id == "trader" and args.num_agents != 1:
        raise ValueError("num_agents: PPO trains one agent per env; use --algo maddpg for several")
    if not 0.0 <= args.abstain_prior < 1.0:
        raise ValueError(f"abstain_prior: expected a probability in [0, 1), got {args.abstain_prior}")
    quote_grid = args.env_id == "trader" and args.actions == "quote"
    for name in ("abstain_prior", "quote_sides"):
        if not quote_grid and getattr(args, name) != Args.__dataclass_fields__[name].default:
            raise ValueError(f"{name}: needs the trader env with --actions quote (the prior is over its quote grid)")
    quote_prior = quote_grid and abstain_log_probs(args.abstain_prior, args.quote_levels, args.quote_flatten,
                                                   args.quote_sides)
    if args.curiosity != "none" and distributed.under_torchrun():
        raise ValueError("curiosity: not supported in data-parallel runs (each rank would train its own module)")
    with Run.start(args, "ppo", data_parallel=DATA_PARALLEL) as run:
        dist, device, logger, world = run.dist, run.device, run.logger, run.dist.world_size
        batch_size = args.num_envs * args.num_steps  # per rank
        num_iterations = args.total_timesteps // (batch_size * world)
        seed = dist.seed(args.seed)

        # ---- env setup: groups of envs, env i seeded with seed + i whatever the grouping ----
        group_size = args.num_envs // args.num_env_groups
        runners = [EnvRunner(make_env(args, group_size, seed + g * group_size), seed + g * group_size)
                   for g in range(args.num_env_groups)]
        groups = [slice(g * group_size, (g + 1) * group_size) for g in range(args.num_env_groups)]
        spaces = single_agent_spaces(runners[0].env, "PPO")
        discrete, obs_dim, act_shape = spaces.discrete, spaces.obs_dim, spaces.act_shape
        num_actions, action_dim = spaces.num_actions, spaces.action_dim
        low = None if discrete else torch.as_tensor(spaces.low, device=device)
        high = None if discrete else torch.as_tensor(spaces.high, device=device)

        agent = Agent(obs_dim, num_actions, action_dim, args.hidden_sizes).to(device)
        if quote_prior:  # all 0 (the init) unless a prior or quote_sides is set
            with torch.no_grad():
                agent.actor[-1].bias.copy_(torch.tensor(quote_prior))
        # fused on CUDA: the whole Adam step in one kernel (the CPU keeps the reference implementation)
        optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5,
                                     fused=torch.device(device).type == "cuda")
        obs_rms, return_rms = RunningMeanStd((obs_dim,)).to(device), RunningMeanStd(()).to(device)
        curiosity = make_curiosity(args.curiosity, obs_dim, action_dim, num_actions, device)
        modules = {"agent": agent, "obs_rms": obs_rms, "return_rms": return_rms}

        # ---- storage (CleanRL layout: steps x envs) ----
        steps_envs = (args.num_steps, args.num_envs)
        obs = torch.zeros((*steps_envs, obs_dim), device=device)
        actions = torch.zeros((*steps_envs, *act_shape), device=device, dtype=torch.long if discrete else torch.float32)
        logprobs, rewards, terminations, truncations, values = (torch.zeros(steps_envs, device=device)
                                                                 for _ in range(5))
        # NEXT_STEP autoreset: the step after an episode's end only resets the env (its action is ignored,
        # its reward is 0); it is no transition and stays out of the losses
        valid = torch.zeros(steps_envs, dtype=torch.bool, device=device)
        discounted_return = torch.zeros(args.num_envs, device=device)  # for --norm-reward
        raw_next_obs = torch.zeros((args.num_envs, obs_dim), device=device)
        next_done = torch.zeros(args.num_envs, dtype=torch.bool, device=device)

        def normalize_obs(x: torch.Tensor) -> torch.Tensor:
            if not args.norm_obs:
                return x
            obs_rms.update(x)
            return obs_rms.normalize(x)

        # ---- start, or resume: the envs replay their logged actions, the learner reloads its state ----
        mine, iteration0 = run.rank_state, 0  # this rank's envs, RNG, ... in the checkpoint
        for g, (runner, cols) in enumerate(zip(runners, groups)):
            o = runner.reset() if mine is None else runner.replay(np.asarray(mine["env_actions"][g]),
                                                                  mine["raw_next_obs"][cols].cpu().numpy())
            raw_next_obs[cols] = torch.tensor(o, dtype=torch.float32, device=device)
        if mine is None:
            next_obs = normalize_obs(raw_next_obs.clone())
        else:  # the checkpoint loads on the CPU; load_state_dict moves each state to its module's device
            run.resumed.load_into(modules=modules)
            optimizer.load_state_dict(run.resumed.state["trainer"]["optimizer"])
            load_curiosity_state(curiosity, run.resumed.state["trainer"]["curiosity"])
            discounted_return.copy_(mine["discounted_return"])
            next_obs, next_done = mine["next_obs"].to(device), mine["next_done"].to(device)
            iteration0 = int(run.resumed.metadata["iteration"])
        model = dist.wrap(agent)  # DDP: gradients averaged over the ranks (the agent has no buffers)
        fast = args.cuda_graphs and graphs_available(device)  # issue 18; the CPU runs the same steps eagerly
        storage = {"obs": obs, "actions": actions, "logprobs": logprobs, "rewards": rewards,
                   "terminations": terminations, "truncations": truncations, "values": values, "valid": valid,
                   "raw_next_obs": raw_next_obs, "next_obs": next_obs, "next_done": next_done}
        page_locked = PageLocked()  # the pools' observations go to the GPU without a host copy (issue 18)
        if fast:
            for runner in runners:
                if hasattr(runner.env, "obs_buffer"):
                    page_locked.register(runner.env.obs_buffer)
        group_steps = [GroupStep(storage, cols, agent, normalize_obs, list(obs_rms.buffers()) if args.norm_obs else [],
                                 low, high, fast, args.bf16, page_locked) for cols in groups]
        advantage_graph = None  # GAE captured at the first update on the fast path
        update_autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if fast and args.bf16 \
            else contextlib.nullcontext
        stats = EpisodeStats()
        policy_spec = {**spaces.policy_spec(), "hidden_sizes": list(args.hidden_sizes), "norm_obs": args.norm_obs}

        def save(step: int, reason: str | None) -> str:
            rank_state = {"env_actions": [r.action_log() for r in runners], "raw_next_obs": raw_next_obs.cpu(),
                          "next_obs": next_obs.cpu(), "next_done": next_done.cpu(),
                          "discounted_return": discounted_return.cpu()}
            trainer = {"optimizer": optimizer.state_dict(), "curiosity": curiosity_state(curiosity)}
            return run.save(step, reason, modules=modules, trainer=trainer, rank_state=rank_state,
                            metadata={"iteration": iteration, "policy_spec": policy_spec})

        def record(g: int, result) -> None:
            """Store group g's step results and its next observation."""
            nonlocal global_step
            o, r, term, trunc, info = result
            global_step += group_size * world
            group_steps[g].record(o, r, term, trunc)
            ep_r, ep_l = stats.add(info)
            iteration_returns.extend(ep_r.tolist())
            stats.log(logger, global_step, ep_r, ep_l)

        global_step, iteration, history, iteration_returns = run.begin(), iteration0, [], []
        for iteration in range(iteration0 + 1, num_iterations + 1):
            # annealing the rate if instructed to do so
            if args.anneal_lr:
                frac = 1.0 - (iteration - 1.0) / num_iterations
                optimizer.param_groups[0]["lr"] = frac * args.learning_rate
            if dist.enabled and args.norm_obs:
                obs_prior = distributed.snapshot_stats(obs_rms)

            # ---- rollout: recv a group's results, act for it, send; the other groups step meanwhile ----
            rollout_start = time.perf_counter()  # its share of the iteration goes into the history (issue 18)
            for step in range(args.num_steps):
                for g, runner in enumerate(runners):
                    if step > 0:
                        record(g, runner.recv())
                    runner.send(group_steps[g].act())
            for g, runner in enumerate(runners):
                record(g, runner.recv())
            rollout_s = time.perf_counter() - rollout_start  # each act waited for the device: nothing left queued
            next_obs_seq = torch.cat([obs[1:], next_obs[None]])  # s_{t+1} of every step t
            if dist.enabled and args.norm_obs:  # every rank continues from the statistics of all ranks' data
                dist.sync_running_stats(obs_rms, obs_prior)

            # ---- rewards: curiosity bonus, normalization ----
            if curiosity is not None:
                with torch.no_grad():
                    intrinsic = curiosity.reward(obs.reshape(-1, obs_dim), actions.reshape(-1, *act_shape),
                                                 next_obs_seq.reshape(-1, obs_dim)).reshape(args.num_steps, -1)
                rewards += args.curiosity_coef * intrinsic * valid
                logger.scalar("charts/intrinsic_reward", intrinsic[valid].mean(), global_step)
            if args.norm_reward:
                scale_rewards(rewards, valid, torch.maximum(terminations, truncations), discounted_return, return_rms,
                              args.gamma, dist)

            # ---- advantages: bootstrap value if not done ----
            with torch.no_grad():
                if fast:  # one launch instead of ~10 kernels per step (the same arithmetic)
                    if advantage_graph is None:
                        next_value = agent.get_value(next_obs)
                        advantage_graph, (advantages, returns) = capture(lambda: gae(
                            rewards, values, next_value, terminations, truncations, args.gamma, args.gae_lambda))
                    next_value.copy_(agent.get_value(next_obs))
                    advantage_graph.replay()
                else:
                    next_value = agent.get_value(next_obs)
                    advantages, returns = gae(rewards, values, next_value, terminations, truncations, args.gamma,
                                              args.gae_lambda)

            # ---- flatten the batch: real transitions only ----
            b_valid = valid.reshape(-1).nonzero().squeeze(1)  # one host sync for the seven selections
            b_obs = obs.reshape(-1, obs_dim)[b_valid]
            b_next_obs = next_obs_seq.reshape(-1, obs_dim)[b_valid]
            b_actions = actions.reshape(-1, *act_shape)[b_valid]
            b_logprobs = logprobs.reshape(-1)[b_valid]
            b_advantages = advantages.reshape(-1)[b_valid]
            b_returns = returns.reshape(-1)[b_valid]
            b_values = values.reshape(-1)[b_valid]

            # ---- optimizing the policy and value network ----
            clipfracs = []
            for _epoch in range(args.update_epochs):
                b_inds = torch.randperm(len(b_obs), device=device)
                for mb_inds in torch.tensor_split(b_inds, args.num_minibatches):
                    with update_autocast():
                        _, newlogprob, entropy, newvalue = model(b_obs[mb_inds], b_actions[mb_inds])
                    logratio = newlogprob - b_logprobs[mb_inds]
                    ratio = logratio.exp()
                    with torch.no_grad():
                        # calculate approx_kl http://joschu.net/blog/kl-approx.html
                        old_approx_kl = (-logratio).mean()
                        approx_kl = ((ratio - 1) - logratio).mean()
                        clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean())  # no host sync

                    mb_advantages = b_advantages[mb_inds]
                    if args.norm_adv:
                        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                    pg_loss = policy_loss(logratio, mb_advantages, args.clip_coef)
                    v_loss = value_loss(newvalue, b_values[mb_inds], b_returns[mb_inds], args.clip_coef,
                                        args.clip_vloss)
                    entropy_loss = entropy.mean()
                    loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                    optimizer.zero_grad()
                    loss.backward()  # DDP: all-reduced (averaged) over the ranks here
                    nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                    optimizer.step()
                    if curiosity is not None:
                        curiosity_loss = curiosity.update(b_obs[mb_inds], b_actions[mb_inds], b_next_obs[mb_inds])

                # every rank must leave the epochs together: the ranks' mean KL decides
                if args.target_kl is not None and dist.mean(approx_kl.item()) > args.target_kl:
                    break


            # ---- logging; checkpoints; SIGTERM, SIGINT, spot notice: every rank stops, after a final save ----
            ret_sum, ret_count = dist.sum([sum(iteration_returns), len(iteration_returns)])
            iteration_returns.clear()
            history.append({"step": global_step, "episodic_return": ret_sum / ret_count if ret_count else None,
                            "value_loss": v_loss.item(), "seconds": run.elapsed(), "rollout_seconds": rollout_s,
                            "iteration_seconds": time.perf_counter() - rollout_start})
            for tag, value in (("charts/learning_rate", optimizer.param_groups[0]["lr"]),
                               ("losses/value_loss", v_loss.item()), ("losses/policy_loss", pg_loss.item()),
                               ("losses/entropy", entropy_loss.item()), ("losses/old_approx_kl", old_approx_kl.item()),
                               ("losses/approx_kl", approx_kl.item()), ("losses/clipfrac", np.mean(torch.stack(clipfracs).tolist())),
                               ("losses/explained_variance", explained_variance(b_values, b_returns))):
                logger.scalar(tag, value, global_step)
            if dist.enabled and ret_count:
                logger.scalar("charts/episodic_return_all_ranks", ret_sum / ret_count, global_step)
            if curiosity is not None:
                logger.scalar("losses/curiosity_loss", curiosity_loss, global_step)
            logger.scalar("charts/SPS", run.sps(global_step), global_step)
            if run.end_iteration(global_step, save, stats.mean_return):
                break

        page_locked.release()
        for runner in runners:
            runner.env.close()
        return run.finish(save, modules, stats, history=history)


if __name__ == "__main__":
    print(train(parse_args(Args)))
