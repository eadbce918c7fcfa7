"""What every training run needs, for the learners (trader.rl) and the encoders (trader.nn) alike: its
arguments (config.py), device, threads, seeds and RNG states (device.py), its folder and TensorBoard
scalars (logger.py), checkpoints and resume through trader.store (checkpoints.py), data parallel
(distributed.py; the torchrun launcher, launch.py), interrupts (interrupt.py: SIGTERM, SIGINT, spot
notices), and the `Run` that owns a learner's lifecycle (lifecycle.py)."""
