"""Cloud training, one process: checkpoints to S3 (a real moto server on 127.0.0.1) and a training run
stopped by SIGTERM midway then resumed from S3 alone equals the uninterrupted run (PPO; SAC with its
replay buffer in the checkpoint); SIGINT also saves; a spot interruption notice from a metadata
service on 127.0.0.1 stops training with a final save."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from trader.run.checkpoints import load_checkpoint, open_store  # noqa: E402

from conftest import PACKAGE_ROOT as PYTHON_DIR  # noqa: E402
ACCESS_KEY = "AKIAIOSFODNN7TESTKEY"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTESTSECRET"

# small, fast runs on the bundled sample; the same options for the interrupted and the uninterrupted run
PPO_CONFIG = "num_steps: 32\nhidden_sizes: [32, 32]\n"
PPO_ARGS = ["--algo", "ppo", "--num-envs", "4", "--total-timesteps", "4096", "--save-freq", "512", "--seed", "11",
            "--no-progress-bar", "--no-track-tensorboard", "--no-cuda"]
SAC_CONFIG = "learning_starts: 100\nbatch_size: 32\nhidden_sizes: [32, 32]\nbuffer_size: 5000\n"
SAC_ARGS = ["--algo", "sac", "--num-envs", "2", "--total-timesteps", "1600", "--save-freq", "200", "--seed", "12",
            "--no-progress-bar", "--no-track-tensorboard", "--no-cuda", "--actions", "continuous"]


@pytest.fixture(autouse=True)
def restore_torch_globals():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def moto_endpoint():
    pytest.importorskip("boto3")
    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


AWS_VARS = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SECURITY_TOKEN",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@pytest.fixture
def s3(moto_endpoint, monkeypatch, tmp_path):
    """A fresh bucket on the moto server; fake credentials only (here and in the children's environment),
    no profile files, no instance metadata: nothing can reach real AWS."""
    import boto3

    fake = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"), "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": moto_endpoint}
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    for k, v in fake.items():
        monkeypatch.setenv(k, v)
    bucket = f"runs-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return {"bucket": bucket, "endpoint": moto_endpoint, "env": fake}


def child_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARS and k != "TRADER_SPOT_METADATA_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def start_train(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trader.cli", "train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(cond, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (status {proc.returncode}) before that:\n{proc.stdout.read()}\n"
                                 f"{proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("timed out")


def finish(proc: subprocess.Popen, timeout: float = 120.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def s3_has_checkpoint(s3, prefix: str):
    import boto3

    client = boto3.client("s3", endpoint_url=s3["endpoint"])
    return lambda: client.list_objects_v2(Bucket=s3["bucket"], Prefix=f"{prefix}/latest").get("KeyCount", 0) > 0


def weights(target) -> dict:
    """{module: state_dict} of a checkpoint (a run folder, a store or one checkpoint in it)."""
    return load_checkpoint(target, state=False).weights


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for module in a:
        assert a[module].keys() == b[module].keys()
        for name in a[module]:
            assert torch.equal(a[module][name], b[module][name]), f"{module}.{name} differs"


def uninterrupted(tmp_path: Path, config: str, args: list[str]) -> dict:
    """The reference run, in this process, into a local folder; its final weights."""
    from click.testing import CliRunner
    from trader.cli import main

    (tmp_path / "ref.yaml").write_text(config)
    res = CliRunner().invoke(main, ["train", *args, "--config", str(tmp_path / "ref.yaml"), "--runs-dir",
                                    str(tmp_path / "ref-runs"), "--checkpoint-uri", str(tmp_path / "ref-ckpt")])
    assert res.exit_code == 0, res.output
    return weights(tmp_path / "ref-ckpt")


# ---- SIGTERM midway, resume from S3 alone: the same weights as without the interruption ------------


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sigterm_then_resume_from_s3_equals_uninterrupted(tmp_path, s3, algo):
    config, args = (PPO_CONFIG, PPO_ARGS) if algo == "ppo" else (SAC_CONFIG, SAC_ARGS)
    total = int(args[args.index("--total-timesteps") + 1])
    uri = f"s3://{s3['bucket']}/{algo}-run"
    first = tmp_path / "machine-1"
    first.mkdir()
    (first / "cfg.yaml").write_text(config)
    proc = start_train([*args, "--config", "cfg.yaml", "--checkpoint-uri", uri], first, child_env(s3["env"]))
    wait_for(s3_has_checkpoint(s3, f"{algo}-run"), proc)  # the first periodic checkpoint is in S3
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert "stopped by SIGTERM" in out and f"resume with: trader train --resume {uri}" in out, out

    store = open_store(uri)
    stopped = store.latest()
    ckpt = store.load()
    assert 0 < stopped < total and ckpt.metadata["reason"] == "SIGTERM" and ckpt.metadata["world_size"] == 1
    assert ckpt.metadata["args"]["checkpoint_uri"] == uri
    if algo == "sac":  # the replay buffer is in the checkpoint, as tensors
        assert "replay_buffer" in ckpt.state and len(ckpt.state["replay_buffer"]["observations"]) > 0
        assert "state/replay_buffer.pt" in {f["path"] for f in ckpt.manifest["files"]}
    assert {f["path"] for f in ckpt.manifest["files"] if f["kind"] == "weights"} >= {
        "weights/agent.safetensors" if algo == "ppo" else "weights/actor.safetensors"}

    # another machine: an empty folder, nothing but the S3 URI; the options come from the checkpoint
    second = tmp_path / "machine-2"
    second.mkdir()
    rc, out, err = finish(start_train(["--resume", "--checkpoint-uri", uri, "--no-progress-bar"], second,
                                      child_env(s3["env"])))
    assert rc == 0, err
    assert f"final checkpoint: {uri}/step_{total:012d}" in out, out
    assert store.latest() == total and len(store.list()) <= 3  # --keep-checkpoints 3

    assert_same_weights(uninterrupted(tmp_path, config, args), weights(uri))


# ---- SIGINT: a final save too (exit status 130) ------------------------------------------------------


def test_sigint_saves_and_exits_130(tmp_path):
    (tmp_path / "cfg.yaml").write_text(PPO_CONFIG)
    ckpt_dir = tmp_path / "ckpt"
    proc = start_train([*PPO_ARGS, "--config", "cfg.yaml", "--checkpoint-uri", str(ckpt_dir), "--keep-checkpoints",
                        "0"], tmp_path, child_env())
    wait_for(lambda: (ckpt_dir / "latest").is_file(), proc)
    proc.send_signal(signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 130, err
    assert "stopped by SIGINT" in out, out
    store = open_store(ckpt_dir)
    ckpt = store.load()
    assert ckpt.metadata["reason"] == "SIGINT" and ckpt.step == store.list()[-1] and ckpt.step < 4096
    # resuming the local run folder (the pre-store way) still works
    run = next((tmp_path / "runs").glob("trader__ppo__11__*"))
    rc, out, err = finish(start_train(["--resume", str(run), "--total-timesteps", str(ckpt.step + 256),
                                       "--no-progress-bar"], tmp_path, child_env()))
    assert rc == 0, err
    assert store.latest() == ckpt.step + 256


# ---- spot interruption notice -------------------------------------------------------------------------


class FakeIMDS:
    """An instance metadata service on 127.0.0.1 (IMDSv2 tokens): no notice for the first `after` polls,
    then a terminate notice."""

    def __init__(self, after: int):
        self.after, self.gets = after, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: bytes = b"") -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                self._send(200, b"token-1") if self.path == "/latest/api/token" else self._send(404)

            def do_GET(self):
                if self.path != "/latest/meta-data/spot/instance-action" or \
                        self.headers.get("X-aws-ec2-metadata-token") != "token-1":
                    return self._send(401 if self.path.endswith("instance-action") else 404)
                outer.gets += 1
                if outer.gets <= outer.after:
                    return self._send(404)
                self._send(200, json.dumps({"action": "terminate", "time": "2030-01-01T00:02:00Z"}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_spot_notice_stops_training_with_a_final_save(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from trader.cli import main

    monkeypatch.delenv("TRADER_SPOT_METADATA_URL", raising=False)
    (tmp_path / "cfg.yaml").write_text(PPO_CONFIG + "spot_poll_s: 0.05\n")
    with FakeIMDS(after=6) as imds:
        res = CliRunner().invoke(main, ["train", *PPO_ARGS, "--config", str(tmp_path / "cfg.yaml"),
                                        "--runs-dir", str(tmp_path / "runs"), "--checkpoint-uri",
                                        str(tmp_path / "ckpt"), "--spot-metadata-url", imds.url])
    assert res.exit_code == 0, res.output
    assert "stopped by spot interruption" in res.output, res.output
    assert imds.gets == 7  # polling stopped with the notice
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.metadata["reason"] == "spot interruption" and 0 < ckpt.step < 4096
    assert ckpt.metadata["args"]["spot_metadata_url"] == imds.url


# ---- one command line for a spot instance: starts a run, and continues it after a restart --------------


def test_resume_latest_starts_a_new_run_when_the_store_is_empty(tmp_path):
    from click.testing import CliRunner

    from trader.cli import main

    (tmp_path / "cfg.yaml").write_text(PPO_CONFIG)
    argv = ["train", "--resume", "--checkpoint-uri", str(tmp_path / "ckpt"), "--algo", "ppo", "--num-envs", "4",
            "--total-timesteps", "256", "--no-progress-bar", "--no-track-tensorboard", "--no-cuda",
            "--runs-dir", str(tmp_path / "runs")]
    first = CliRunner().invoke(main, [*argv, "--config", str(tmp_path / "cfg.yaml")])
    assert first.exit_code == 0, first.output
    assert "no checkpoint under" in first.output and "starting a new run" in first.output
    assert open_store(tmp_path / "ckpt").latest() == 256
    again = CliRunner().invoke(main, ["train", "--resume", "--checkpoint-uri", str(tmp_path / "ckpt"),
                                      "--total-timesteps", "512", "--no-progress-bar"])  # the rest: saved
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.output and open_store(tmp_path / "ckpt").latest() == 512


def test_backtest_reads_its_checkpoint_from_s3(tmp_path, s3, monkeypatch):
    """`trader backtest --checkpoint s3://...` works like train's --checkpoint-uri (issue 13)."""
    from click.testing import CliRunner

    from trader.cli import main

    monkeypatch.chdir(tmp_path)
    uri = f"s3://{s3['bucket']}/bt-run"
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--algo", "ppo", "--total-timesteps", "1024", "--num-envs", "2",
                               "--no-progress-bar", "--no-cuda", "--checkpoint-uri", uri])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["backtest", "--checkpoint", uri])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "runs" / "backtest__bt-run" / "backtest.json").read_text())
    assert report["context"]["checkpoint"] == uri and "ppo" in report["results"]
