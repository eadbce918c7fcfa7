"""Learners for the trading envs and standard tasks: PPO (ppo.py), SAC (sac.py), MADDPG (maddpg.py),
sharing common.py (arguments, checkpoints, replay buffer, GAE, Gumbel-softmax, curiosity) and envs.py
(the envs behind one interface). `trader train --algo ppo|sac|maddpg` runs them (cli.py)."""

ALGOS = ("ppo", "sac", "maddpg")
