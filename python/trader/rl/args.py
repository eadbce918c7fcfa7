"""The options every learner shares (`CommonArgs`; ppo.py, sac.py and maddpg.py extend it with their
own `Args`): the run (seed, budget, device, checkpoints, resume, interrupts), curiosity, the trader
env's data and encoder, and the env's own options (`TraderEnvArgs`, generated from its spec). One
dataclass field per option with its docstring under it (CleanRL's style; the generated fields carry
theirs as metadata); trader.run.lifecycle fills them from a config file and flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trader.options import SEED
from trader.sim import features, spec
from trader.sim.flags import NOT_FLAGS

# One field per option of the trader env's declaration (cpp/env/spec.h via trader.sim.spec), with its
# doc and unit as help: a new env option is a learner argument, a config key and a flag at once.
TraderEnvArgs = dataclasses.make_dataclass("TraderEnvArgs", spec.dataclass_fields(skip=NOT_FLAGS))
TraderEnvArgs.__module__ = __name__


@dataclass
class CommonArgs(TraderEnvArgs):
    env_id: str = "trader"
    """`trader` (the C++ order-book env), a gymnasium id (CartPole-v1, Pendulum-v1, ...) or `mpe2:NAME`"""
    seed: int = SEED
    """seed of the experiment (python, numpy, torch and the envs: env i gets seed + i)"""
    total_timesteps: int = 1_000_000
    """total env steps of the experiment (all envs together)"""
    num_envs: int = 1
    """number of parallel envs"""
    learning_rate: float = 3e-4
    """learning rate of the optimizers"""
    cuda: bool = True
    """use an accelerator when one is there (cuda, then mps); else the CPU"""
    torch_deterministic: bool = True
    """deterministic torch algorithms (on the CPU: same seed, same result)"""
    torch_threads: int = 1
    """torch's CPU threads (small networks run fastest on one, and a busy machine makes more threads
    wait on each other; 0: torch's default)"""
    track: bool = True
    """write TensorBoard scalars into the run folder"""
    out: str | None = None
    """the run folder (default: {runs_dir}/{env}__{algo}__{seed}__{date-time})"""
    runs_dir: str = "runs"
    """parent folder of the run folders named {env}__{algo}__{seed}__{date-time}"""
    checkpoint_uri: str | None = None
    """where checkpoints go: a folder or s3://bucket/prefix (default: {run folder}/checkpoints). S3:
    endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, credentials from boto3's usual chain"""
    keep_checkpoints: int = 3
    """checkpoints kept in the store, the newest (0: all)"""
    save_freq: int = 0
    """env steps between checkpoints (0: only the final one, and one on SIGTERM / SIGINT / a spot notice)"""
    resume: str | None = None
    """continue from: `latest` (the latest checkpoint under checkpoint_uri), a checkpoint store (a folder
    or s3://bucket/prefix: its latest), one checkpoint in it (.../step_000000001000) or a run folder"""
    spot_metadata_url: str | None = None
    """poll this instance metadata address for spot interruption notices and stop with a final save
    (`aws`: http://169.254.169.254; default: env TRADER_SPOT_METADATA_URL, else no polling)"""
    spot_poll_s: float = 5.0
    """seconds between spot notice polls"""
    dist_backend: str = "auto"
    """torch.distributed backend under torchrun / --nproc: auto (nccl on cuda, gloo on the CPU), gloo, nccl"""
    progress_bar: bool = True
    """show a progress bar"""
    curiosity: str = "none"
    """intrinsic reward: none, rnd (Burda et al. 2019) or icm (Pathak et al. 2017)"""
    curiosity_coef: float = 0.01
    """weight of the intrinsic reward added to the env reward"""
    # trader env (env_id == "trader"): the env's own options come from TraderEnvArgs
    data: list[str] | None = None
    """trader: dataset folders, collections or folders of datasets; episodes are drawn across all of them and
    never cross from one to another (default: the bundled sample; from Python also trader.sim.Market(s))"""
    train_also: list[str] | None = None
    """trader: dataset folders trained on in full besides --data: all their rows, no held-out tail
    (train_fraction cuts --data only), so other recordings add to training while --data keeps its tail for
    backtests (trader evaluate --train-also: every fold's training)"""
    mirror: bool = False
    """trader: also train on every dataset's mirror image (prices reflected about its median trade price, bids <->
    asks, buyer <-> seller aggressor: trader.data.events.mirrored), drawn as one more dataset with the same
    held-out tail: a side that the training days paid cannot be learned as a side (issue 13; Bitstamp's asks
    filled more and less adversely than its bids in every block: benchmarks/side_markouts.py)"""
    interval_ms: float = 100.0
    """trader: the env's rows, and so its step, are the book sampled every interval_ms milliseconds (the
    grid of train-encoder's --interval-ms; backtests and live sessions of the agent use the run's)"""
    encoder: str | None = None
    """trader: an encoder folder of trader train-encoder (RUN/MODEL or RUN/MODEL/best): observations are
    its embeddings of every row (cached beside it, trader.nn.embed.agent_features) plus the account features"""
    encoder_with_features: bool = False
    """trader: with --encoder, observe the book features of --feature-set and the embeddings side by side
    (evaluate with and without the encoder, all else equal, to see what its embeddings add; in session 24 the
    embeddings alone, in place of the features, cut what the quoting agents' fills earned to a third to two thirds of
    the recipe's: benchmarks/README.md)"""
    encoder_sha256: str | None = None
    """trader: the sha256 of --encoder's files, recorded by the run at its start; backtests and live runs
    of the agent refuse an encoder with other files"""
    num_threads: int = 1
    """trader: worker threads of the C++ env pool"""
    train_fraction: float = 0.7
    """trader: episodes lie in the first fraction of the data's rows; the rest is held out for backtests"""
    feature_set: int = features.DEFAULT_SET
    """trader: observation features of the book (trader.sim.features): 1 = sizes in base units, 2 = sizes
    relative to the instrument's own depth (scale-free across instruments), 3 = 2 and exponential means of
    trend, trade flow, OFI and volatility over 1, 10 and 60 s; recorded with the run"""

    @classmethod
    def migrate(cls, saved: dict, *, recorded: bool = False) -> dict:
        """Saved arguments (a checkpoint's, a config file's) of a run older than the env spec, under
        today's names (trader.sim.spec.from_legacy); trader.run.lifecycle.resolve_args calls it.
        `recorded`: a run's own saved arguments, which predate any field they lack: such a run
        observed features.LEGACY_SET."""
        out = spec.from_legacy(saved)
        if recorded:
            out.setdefault("feature_set", features.LEGACY_SET)
        return out
