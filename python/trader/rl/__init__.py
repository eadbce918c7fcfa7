"""Learners for the trading envs and standard tasks: PPO (ppo.py), SAC (sac.py), MADDPG (maddpg.py),
one file each in CleanRL's shape. What they share, one concept a module: their common options
(args.py), network pieces (nets.py), the replay buffer (buffers.py), curiosity (curiosity.py), episode
statistics (episodes.py), the envs behind one interface (envs.py; the MPE adapter, mpe.py). The policy
of a checkpoint and the learners' registry: policy.py. `trader train --algo ppo|sac|maddpg` runs them
(cli.py); a run's lifecycle (folder, checkpoints, resume, interrupts, data parallel) is trader.run's."""
