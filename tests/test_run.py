"""trader.run on small cases: arguments from defaults, a config file, a resumed checkpoint and flags;
checkpoints written through save_checkpoint and found again; RNG states round trip; the schedule of
saves and updates."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trader.rl import ppo, sac  # noqa: E402
from trader.run.checkpoints import load_checkpoint, locate_checkpoint, open_store, save_checkpoint  # noqa: E402
from trader.run.device import rng_state, seed_everything, set_rng_state  # noqa: E402
from trader.run.distributed import Dist  # noqa: E402
from trader.run.lifecycle import due, parse_args, resolve_args  # noqa: E402


pytestmark = pytest.mark.usefixtures("restore_torch_globals")


# ---- arguments ----------------------------------------------------------------------------------


def test_config_file_overrides_defaults_and_rejects_unknown_keys(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num-steps: 64\nhidden_sizes: [32, 16]\nlearning_rate: 1e-3\n")
    args = resolve_args(ppo.Args, str(cfg), {"seed": "7", "learning_rate": 0.5})
    assert args.num_steps == 64 and args.hidden_sizes == (32, 16) and args.seed == 7 and args.learning_rate == 0.5
    (tmp_path / "c.json").write_text(json.dumps({"num_stepz": 3}))
    with pytest.raises(ValueError, match="unknown option 'num_stepz'.*did you mean num_steps"):
        resolve_args(ppo.Args, str(tmp_path / "c.json"))
    with pytest.raises(ValueError, match="num_steps: expected int"):
        resolve_args(ppo.Args, None, {"num_steps": "many"})
    with pytest.raises(ValueError, match="unknown option 'checkpoint_dir'"):  # the old name is gone
        resolve_args(ppo.Args, None, {"checkpoint_dir": str(tmp_path)})


def test_resume_starts_from_the_saved_arguments(tmp_path):
    net = torch.nn.Linear(1, 1)
    store = open_store(tmp_path / "elsewhere")
    save_checkpoint(store, 64, Dist(), modules={"net": net}, trainer={}, rank_state={},
                    metadata={"args": {"num_steps": 7, "seed": 3, "resume": None}})
    args = resolve_args(ppo.Args, None, {"resume": str(tmp_path / "elsewhere"), "seed": 4})
    assert (args.num_steps, args.seed, args.resume) == (7, 4, str(tmp_path / "elsewhere"))


def test_parse_args_cleanrl_flags(tmp_path):
    args = parse_args(sac.Args, ["--env-id", "Pendulum-v1", "--total-timesteps", "1000", "--no-autotune",
                                 "--hidden-sizes", "8,8"])
    assert (args.env_id, args.total_timesteps, args.autotune, args.hidden_sizes) == ("Pendulum-v1", 1000, False, (8, 8))


# ---- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_is_atomic_and_latest_is_found(tmp_path):
    net = torch.nn.Linear(2, 2)
    store = open_store(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        save_checkpoint(store, step, Dist(), modules={"net": net}, trainer={"x": step}, rank_state={"n": step},
                        metadata={"algo": "test"})
    assert store.list() == [20, 30] and not list(tmp_path.glob(".tmp-*"))
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.ref.uri == str(tmp_path / "step_000000000030")
    assert ckpt.state["trainer"]["x"] == 30 and ckpt.state["ranks"] == [{"n": 30}]
    assert ckpt.metadata == {"algo": "test", "step": 30, "world_size": 1}
    weights_only = load_checkpoint(tmp_path / "step_000000000020", state=False)
    assert weights_only.state == {} and weights_only.step == 20
    torch.testing.assert_close(weights_only.weights["net"]["weight"], net.weight.detach())
    assert (tmp_path / "step_000000000020" / "weights" / "net.safetensors").is_file()


def test_locate_checkpoint_targets(tmp_path):
    run = tmp_path / "run"
    store = open_store(run / "checkpoints")
    save_checkpoint(store, 5, Dist(), modules={"net": torch.nn.Linear(1, 1)}, trainer={}, rank_state={}, metadata={})
    for target, step in ((run, None), (run / "checkpoints", None), (run / "checkpoints" / "step_000000000005", 5)):
        found, at = locate_checkpoint(target)
        assert (found.uri, at) == (str(run / "checkpoints"), step)
    elsewhere = tmp_path / "moved"  # a run folder whose config.yaml names its store
    elsewhere.mkdir()
    (elsewhere / "config.yaml").write_text(f"checkpoint_uri: {run / 'checkpoints'}\n")
    assert locate_checkpoint(elsewhere)[0].uri == str(run / "checkpoints")
    with pytest.raises(ValueError, match="--checkpoint-uri"):
        locate_checkpoint("latest")
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        locate_checkpoint(tmp_path / "nothing")


# ---- RNG states, schedules ----------------------------------------------------------------------


def test_rng_state_round_trip():
    seed_everything(3, True, torch.device("cpu"))
    state = rng_state()
    a = (np.random.rand(), torch.rand(3), __import__("random").random())
    set_rng_state(state)
    b = (np.random.rand(), torch.rand(3), __import__("random").random())
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_due_fires_once_per_multiple_whatever_the_stride():
    assert [s for s in range(6, 64, 6) if due(s, s - 6, 16)] == [18, 36, 48]  # 16, 32, 48 passed
    assert not any(due(s, s - 1, 0) for s in range(1, 100))  # 0: never
