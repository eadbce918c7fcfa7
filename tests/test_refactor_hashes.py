"""Behaviour guard for issue 12 (the `run` package and the `rl/` split): short seeded CPU runs of every
learner and of the encoder trainer on the bundled sample end with exactly the weights they had before
the code moved. The digests below were recorded from commit 373ccef, before the refactor; a digest is
the sha256 over every saved weight tensor (names, dtypes, shapes, bytes; `state_digest`). Each run is
checked twice: the learner's result and the weights read back from its final checkpoint.

The digests are those of this machine's torch build on the CPU (deterministic algorithms, one
thread); another torch version or CPU may round differently and needs them recorded again from the
same commit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trader.rl import maddpg, ppo, sac  # noqa: E402
from trader.run.distributed import state_digest  # noqa: E402
from trader.sim import load_market  # noqa: E402
from trader.store import open_store  # noqa: E402

# recorded from commit 373ccef (before the run/ refactor); they guard that the move changes no behaviour
EXPECTED = {
    "ppo": "0836af8a8038494ff65aa6260bd1730d51b04eb36dcbe1151bf53c88b33569f6",
    "ppo_continuous": "40ff04a14a995ef798c62894f482f129758cc238bd0cd00adc6ed0f0d6ed319d",
    "sac": "879a548571e6f4cd34036d9ecf2109d432eb8ad86a4b79a7ee1fc1fe400ef9da",
    "sac_discrete": "4fa8b3b3d97c2b59e1165166bafe7a14e5a79bb3e0efb22432238c16193a5b89",
    "maddpg": "63bfcb2b2fea30d5b942e28a7592f24b730bf144928a312abfc2bd96a3ca4b33",
    "encoder_tcn": "117026523cede121aee12dcbf200cfb224b04431ebabe566354ec006a44fe542",
}

SMALL = dict(hidden_sizes=(32, 32))
RUNS = {
    "ppo": (ppo, dict(num_envs=4, num_steps=64, total_timesteps=1024, curiosity="rnd", save_freq=512, **SMALL)),
    "ppo_continuous": (ppo, dict(actions="continuous", num_envs=4, num_steps=64, total_timesteps=1024, norm_obs=True,
                                 norm_reward=True, num_env_groups=2, **SMALL)),
    "sac": (sac, dict(actions="continuous", num_envs=2, total_timesteps=512, learning_starts=128, batch_size=64,
                      curiosity="icm", **SMALL)),
    "sac_discrete": (sac, dict(num_envs=2, total_timesteps=512, learning_starts=128, batch_size=64, **SMALL)),
    "maddpg": (maddpg, dict(num_agents=2, num_envs=2, total_timesteps=512, learning_starts=128, update_every=8,
                            batch_size=64, curiosity="rnd", **SMALL)),
}


pytestmark = pytest.mark.usefixtures("restore_torch_globals")


@pytest.fixture(scope="module")
def market():
    return load_market(None)  # the bundled sample (a real recording), 1797 rows at 100 ms


@pytest.mark.parametrize("name", list(RUNS))
def test_learner_weights_unchanged(tmp_path, market, name):
    module, kw = RUNS[name]
    args = module.Args(env_id="trader", data=market, horizon=100, seed=3, cuda=False, torch_threads=1, track=False,
                       progress_bar=False, runs_dir=str(tmp_path), **kw)
    result = module.train(args)
    saved = open_store(result["checkpoint_store"], keep_last=None).load()
    assert saved.step == args.total_timesteps
    assert (result["state_sha256"], state_digest(saved.weights)) == (EXPECTED[name], EXPECTED[name])


def test_encoder_weights_unchanged(tmp_path):
    from trader.nn.data import build, load_series
    from trader.nn.train import TrainConfig, train_model

    torch.set_num_threads(1)  # the encoder trainer leaves torch's thread count as it finds it; pin it
    data = build([load_series(None)], horizons=(10, 20), window=50)
    cfg = TrainConfig(model="tcn", epochs=2, chunks_per_step=4, chunk=32, channels=16, embedding_dim=8,
                      max_steps_per_epoch=3, save_freq=2, device="cpu")
    _, meta = train_model(data, cfg, tmp_path, progress=False)
    saved = open_store(meta["checkpoint_store"], keep_last=None).load()
    assert meta["global_step"] == saved.step == 6
    assert (meta["state_sha256"], state_digest(saved.weights)) == (EXPECTED["encoder_tcn"], EXPECTED["encoder_tcn"])
