"""`trader backtest --checkpoint s3://...` reads the run from its checkpoint store alone, as `trader
train --resume s3://...` does: against moto's real S3 server on 127.0.0.1 (fake credentials)."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from trader.backtest.cli import default_report_dir
from trader.cli import main


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


@pytest.fixture
def s3_bucket(monkeypatch, tmp_path, moto_endpoint):
    """A fresh bucket; fake credentials only, no profile files or instance metadata: nothing reaches AWS."""
    import boto3

    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    bucket = f"bt-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


def test_backtest_a_checkpoint_in_s3(tmp_path, s3_bucket, restore_torch_globals):
    uri = f"s3://{s3_bucket}/runs/ppo-a"
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--algo", "ppo", "--total-timesteps", "1024", "--num-envs", "4",
                               "--horizon", "100", "--runs-dir", str(tmp_path / "runs"), "--no-progress-bar",
                               "--checkpoint-uri", uri])
    assert res.exit_code == 0, res.output
    local = json.loads(_backtest(runner, next((tmp_path / "runs").iterdir()), tmp_path / "local"))
    remote = json.loads(_backtest(runner, uri, tmp_path / "remote"))
    # the same agent, read from S3: the same report, the checkpoint named by its URI
    assert remote["results"] == local["results"]
    assert remote["context"]["checkpoint"] == uri
    res = runner.invoke(main, ["backtest", "--checkpoint", f"s3://{s3_bucket}/runs/none-here", "--out",
                               str(tmp_path / "none")])
    assert res.exit_code == 2 and "--checkpoint" in res.output


def _backtest(runner, checkpoint, out) -> str:
    res = runner.invoke(main, ["backtest", "--checkpoint", str(checkpoint), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return (out / "backtest.json").read_text()


def test_default_report_folders(tmp_path):
    assert default_report_dir("s3://bucket/runs/ppo-a") == default_report_dir("s3://bucket/runs/ppo-a/")
    assert str(default_report_dir("s3://bucket/runs/ppo-a")) == "backtests/bucket_runs_ppo-a"
    run = tmp_path / "trader__ppo__1__1"
    assert default_report_dir(str(run)) == run / "backtest"
    assert default_report_dir(str(run / "checkpoints" / "step_000000001024")) == run / "backtest"
