"""Data-parallel training with torch.distributed (gloo, 2 CPU processes under torchrun): PPO trains on a
market whose right answer is known and its ranks stay in sync; `trader train --nproc 2` stops every rank
together on SIGTERM with one checkpoint holding both ranks' env state, and the resumed run equals the
uninterrupted one; encoder training runs in sync in 2 processes, and one stopped by SIGTERM resumes to
the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from trader.rl.policy import load  # noqa: E402
from trader.run.checkpoints import load_checkpoint, open_store  # noqa: E402
from trader.run.distributed import state_digest  # noqa: E402
from trader.run.launch import launch_env, torchrun_command  # noqa: E402

from conftest import PACKAGE_ROOT as PYTHON_DIR  # noqa: E402


@pytest.fixture(autouse=True)
def restore_torch_globals():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TRADER_SPOT_METADATA_URL", "WORLD_SIZE", "RANK",
                                                            "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    return env


def torchrun(script: Path, *args: str, nproc: int = 2, timeout: float = 240.0) -> subprocess.CompletedProcess:
    cmd = torchrun_command(nproc, [str(script), *args], module=False)
    env = launch_env(child_env())
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def wait_for(cond, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended (status {proc.returncode}) first:\n{proc.stdout.read()}\n{proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("timed out")


def finish(proc: subprocess.Popen, timeout: float = 240.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def weights(target) -> dict:
    """{module: state_dict} of a checkpoint (a run folder, a store or one checkpoint in it)."""
    return load_checkpoint(target, state=False).weights


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for module in a:
        assert a[module].keys() == b[module].keys()
        for name in a[module]:
            assert torch.equal(a[module][name], b[module][name]), f"{module}.{name} differs"


# ---- PPO, 2 ranks x 4 envs, on a market that rises one tick a row: the best policy buys and holds ------

RISING = textwrap.dedent("""
    import numpy as np
    from trader.sim import Market

    def rising_market(rows=300):
        book = np.zeros((rows, 2, 4), dtype=np.int64)
        mid = 1000 + np.arange(rows)
        for level in range(2):
            book[:, level, 0] = mid - level
            book[:, level, 2] = mid + 1 + level
            book[:, level, 1] = book[:, level, 3] = 1000
        features = np.random.default_rng(0).normal(0.0, 0.1, (rows, 2)).astype(np.float32)
        return Market(book, features, np.arange(rows, dtype=np.int64), tick_size=1.0, lot_size=1.0)

    # 20-step episodes, no fees; holding 10 lots earns 1 quote a step each (times reward_scale 0.1):
    # the best return is 15.0 (a lot bought each step up to 10), a random policy's about 0
    TRADER = dict(env_id="trader", data=rising_market(), horizon=20, taker_fee_bps=0.0, trade_size=1.0, max_position=10.0,
                  reward_scale=0.1, progress_bar=False, track=False, cuda=False)
""")

PPO_SCRIPT = RISING + textwrap.dedent("""
    import json, os, sys
    from trader.rl import ppo

    out = sys.argv[1]
    result = ppo.train(ppo.Args(**TRADER, num_envs=4, num_steps=32, total_timesteps=8192, runs_dir=out))
    rank = int(os.environ["RANK"])
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:  # every rank: its own hash of its weights
        json.dump({k: result[k] for k in ("state_sha256", "ranks_in_sync", "world_size", "history", "checkpoint",
                                          "global_step", "run_dir")}, f)
""")


def test_ppo_two_gloo_ranks_learn_and_stay_in_sync(tmp_path):
    script = tmp_path / "ppo_ddp.py"
    script.write_text(PPO_SCRIPT)
    torchrun(script, str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2] and all(r["ranks_in_sync"] for r in ranks)
    assert ranks[0]["global_step"] == 8192  # env steps of both ranks: 32 iterations of 2 ranks x 4 envs x 32 steps
    # in sync: each rank's own hash of its final weights, the all-gathered hashes, the checkpoint's weights
    assert ranks[0]["state_sha256"] == ranks[1]["state_sha256"]
    sync = json.loads((Path(ranks[0]["run_dir"]) / "ddp_sync.json").read_text())
    assert sync["in_sync"] and sync["state_sha256"] == [ranks[0]["state_sha256"]] * 2 and sync["backend"] == "gloo"
    assert state_digest(weights(ranks[0]["checkpoint"])) == ranks[0]["state_sha256"]
    ckpt = load_checkpoint(ranks[0]["checkpoint"])
    assert ckpt.metadata["world_size"] == 2 and len(ckpt.state["ranks"]) == 2
    logs = [np.asarray(r["env_actions"][0]) for r in ckpt.state["ranks"]]
    assert logs[0].shape == logs[1].shape == (8192 // 8, 4) and not np.array_equal(logs[0], logs[1])  # own seeds

    # it learns: the episodes' mean return (both ranks) rises from the random level to near the best, 15
    returns = [h["episodic_return"] for h in ranks[0]["history"]]
    assert returns == [h["episodic_return"] for h in ranks[1]["history"]]  # all-reduced over the ranks
    early, late = np.mean(returns[:2]), np.mean(returns[-3:])
    assert early < 5.0 and late > 11.0, returns
    # and the greedy policy of the checkpoint is near the best on fresh episodes
    namespace: dict = {}
    exec(RISING, namespace)  # noqa: S102 - the test's own market definition
    from trader.rl import ppo
    from trader.rl.envs import evaluate, make_env

    args = ppo.Args(**namespace["TRADER"])
    greedy = evaluate(load(ranks[0]["checkpoint"]).act, make_env(args, 16, seed=999), 32).mean()
    assert greedy > 12.0, greedy


# ---- trader train --nproc 2: SIGTERM stops both ranks with one checkpoint; resume = uninterrupted ----

PPO_CONFIG = "num_steps: 32\nhidden_sizes: [32, 32]\n"
NPROC_ARGS = ["--nproc", "2", "--algo", "ppo", "--num-envs", "4", "--total-timesteps", "4096", "--save-freq", "512",
              "--seed", "21", "--no-progress-bar", "--no-cuda", "--config", "cfg.yaml"]


def trader_train(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trader.cli", "train", *args], cwd=cwd, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_nproc_2_sigterm_stops_all_ranks_and_resume_equals_uninterrupted(tmp_path):
    run_dir = tmp_path / "interrupted"
    run_dir.mkdir()
    (run_dir / "cfg.yaml").write_text(PPO_CONFIG)
    proc = trader_train([*NPROC_ARGS, "--checkpoint-uri", "ckpt"], run_dir)
    wait_for(lambda: (run_dir / "ckpt" / "latest").is_file(), proc)
    proc.send_signal(signal.SIGTERM)  # to the launcher: torchrun passes it on to both ranks
    rc, out, err = finish(proc)
    assert rc == 0, out + err
    assert "stopped by SIGTERM" in out and "resume with: trader train --nproc 2 --resume" in out, out
    store = open_store(run_dir / "ckpt")
    ckpt = store.load()
    assert ckpt.metadata["reason"] == "SIGTERM" and ckpt.metadata["world_size"] == 2 and 0 < ckpt.step < 4096
    assert len(ckpt.state["ranks"]) == 2 and all(len(r["env_actions"][0]) == ckpt.step // 8 for r in ckpt.state["ranks"])

    rc, out, err = finish(trader_train(["--nproc", "2", "--resume", "--checkpoint-uri", "ckpt", "--no-progress-bar"],
                                       run_dir))
    assert rc == 0, out + err
    assert "weights identical on every rank: True" in out, out
    assert store.latest() == 4096

    reference = tmp_path / "uninterrupted"
    reference.mkdir()
    (reference / "cfg.yaml").write_text(PPO_CONFIG)
    rc, out, err = finish(trader_train([*NPROC_ARGS, "--checkpoint-uri", "ckpt"], reference))
    assert rc == 0, out + err
    assert_same_weights(weights(reference / "ckpt"), weights(run_dir / "ckpt"))


# ---- encoders: 2 ranks in sync; SIGTERM, resume, the same weights ------------------------------------

ENCODER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from trader.nn.data import build, load_series
    from trader.nn.train import TrainConfig, train_model

    out, epochs, steps, save_freq, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \\
        sys.argv[5] == "resume"
    data = build([load_series(None)], horizons=(10, 20), window=50)
    cfg = TrainConfig(model="tcn", epochs=epochs, chunks_per_step=4, chunk=32, channels=16, embedding_dim=8,
                      max_steps_per_epoch=steps, device="cpu", save_freq=save_freq)
    print("training", flush=True)
    model, meta = train_model(data, cfg, out, resume=resume, progress=False)
    rank = int(os.environ.get("RANK", "0"))
    keep = ("state_sha256", "ranks_in_sync", "world_size", "history", "interrupted", "checkpoint", "global_step")
    with open(os.path.join(out, f"meta{rank}.json"), "w") as f:
        json.dump({k: meta[k] for k in keep}, f)
""")


def test_encoder_two_gloo_ranks_in_sync_and_loss_falls(tmp_path):
    script = tmp_path / "enc.py"
    script.write_text(ENCODER_SCRIPT)
    torchrun(script, str(tmp_path), "3", "10", "0", "new")
    metas = [json.loads((tmp_path / f"meta{r}.json").read_text()) for r in range(2)]
    assert all(m["world_size"] == 2 and m["ranks_in_sync"] for m in metas)
    assert metas[0]["state_sha256"] == metas[1]["state_sha256"] and metas[0]["global_step"] == 30
    sync = json.loads((tmp_path / "tcn" / "ddp_sync.json").read_text())
    assert sync["in_sync"] and sync["state_sha256"] == [metas[0]["state_sha256"]] * 2
    assert state_digest(open_store(tmp_path / "tcn" / "checkpoints").load().weights) == \
        metas[0]["state_sha256"]
    val = [h["val_loss"] for h in metas[0]["history"]]
    assert val[-1] < val[0], val


def test_encoder_sigterm_then_resume_equals_uninterrupted(tmp_path):
    from trader.store import open_store

    script = tmp_path / "enc.py"
    script.write_text(ENCODER_SCRIPT)
    run = tmp_path / "run"
    argv = [sys.executable, str(script), str(run), "2", "15", "3"]
    proc = subprocess.Popen([*argv, "new"], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (run / "tcn" / "checkpoints" / "latest").is_file(), proc)
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == 0, err
    stopped = json.loads((run / "meta0.json").read_text())
    assert stopped["interrupted"] == "SIGTERM" and 3 <= stopped["global_step"] < 30
    store = open_store(run / "tcn" / "checkpoints")
    assert store.latest() == stopped["global_step"] and store.load().metadata["reason"] == "SIGTERM"

    rc, _, err = finish(subprocess.Popen([*argv, "resume"], env=child_env(), stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True))
    assert rc == 0, err
    resumed = json.loads((run / "meta0.json").read_text())
    assert resumed["interrupted"] is None and resumed["global_step"] == 30 and len(resumed["history"]) == 2

    ref = tmp_path / "ref"
    rc, _, err = finish(subprocess.Popen([sys.executable, str(script), str(ref), "2", "15", "0", "new"],
                                           env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    assert rc == 0, err
    reference = json.loads((ref / "meta0.json").read_text())
    assert reference["state_sha256"] == resumed["state_sha256"]
    assert_same_weights(open_store(ref / "tcn" / "checkpoints").load().weights, store.load().weights)
    assert [h["val_loss"] for h in reference["history"]] == [h["val_loss"] for h in resumed["history"]]
