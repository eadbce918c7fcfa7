"""InterruptWatcher: SIGTERM/SIGINT set a flag and the process goes on; a spot interruption notice served
by a small HTTP server on 127.0.0.1 (IMDSv2 and IMDSv1) sets it too; handlers come back on exit; and a
training loop in a child process makes a final save on SIGTERM that --resume then finds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from trader.run.interrupt import ENV_METADATA_URL, SPOT_PATH, TOKEN_PATH, InterruptWatcher, resolve_metadata_url

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"


@pytest.fixture(autouse=True)
def no_metadata_env(monkeypatch):
    monkeypatch.delenv(ENV_METADATA_URL, raising=False)


def wait_for(cond, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


# ---- signals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_sets_flag_and_process_keeps_running(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with InterruptWatcher() as watcher:
        assert not watcher.should_stop and watcher.reason is None and not watcher.polling
        os.kill(os.getpid(), sig)
        assert wait_for(lambda: watcher.should_stop)
        survived = sum(range(1000))  # still running after the signal
        assert watcher.reason == signal.Signals(sig).name
    assert survived == 499500
    assert {s: signal.getsignal(s) for s in before} == before


def test_handlers_restored_and_custom_previous_handler_kept():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda s, f: calls.append(s))
    try:
        with InterruptWatcher() as watcher:
            assert signal.getsignal(signal.SIGTERM) == watcher._on_signal
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(lambda: calls == [signal.SIGTERM])
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_second_sigint_raises_keyboardinterrupt():
    with pytest.raises(KeyboardInterrupt):
        with InterruptWatcher() as watcher:
            os.kill(os.getpid(), signal.SIGINT)
            assert wait_for(lambda: watcher.should_stop)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_main_thread_only_warns():
    result = {}

    def run():
        with InterruptWatcher() as w:
            w.request_stop("manual")
            result["reason"] = w.reason

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert result == {"reason": "manual"}


# ---- spot notices -------------------------------------------------------------------------------

class FakeIMDS:
    """instance-action answers 404 for the first ``after`` polls, then the notice. ``v2``: tokens are
    handed out and required (401 without); otherwise the token PUT gets 405, as on IMDSv1-only hosts."""

    def __init__(self, after: int, v2: bool = True):
        self.after, self.v2 = after, v2
        self.gets = 0
        self.puts = 0
        self.tokens_seen: list[str | None] = []
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
                outer.puts += 1
                if self.path == TOKEN_PATH and outer.v2 and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._send(200, b"tok-123")
                else:
                    self._send(405)

            def do_GET(self):
                if self.path != SPOT_PATH:
                    return self._send(404)
                token = self.headers.get("X-aws-ec2-metadata-token")
                outer.tokens_seen.append(token)
                if outer.v2 and token != "tok-123":
                    return self._send(401)
                outer.gets += 1
                if outer.gets <= outer.after:
                    return self._send(404)
                self._send(200, json.dumps({"action": "terminate", "time": "2026-01-01T00:02:00Z"}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("v2", [True, False])
def test_spot_notice_after_some_polls(v2):
    with FakeIMDS(after=3, v2=v2) as imds:
        with InterruptWatcher(metadata_url=imds.url, poll_s=0.05) as watcher:
            assert watcher.polling
            assert wait_for(lambda: watcher.should_stop)
            assert watcher.reason == "spot interruption"
            assert watcher.notice == {"action": "terminate", "time": "2026-01-01T00:02:00Z"}
            assert imds.gets == 4 and watcher.polls == 4
        assert not watcher.polling
    if v2:
        assert set(imds.tokens_seen) == {"tok-123"} and imds.puts == 1  # the token is cached
    else:
        assert set(imds.tokens_seen) == {None} and imds.puts == 1  # IMDSv1 after one refused PUT


def test_spot_url_from_environment(monkeypatch):
    with FakeIMDS(after=0) as imds:
        monkeypatch.setenv(ENV_METADATA_URL, imds.url)
        with InterruptWatcher(poll_s=0.05) as watcher:
            assert watcher.url == imds.url + SPOT_PATH
            assert wait_for(lambda: watcher.should_stop) and watcher.reason == "spot interruption"


def test_polling_off_by_default(monkeypatch):
    with InterruptWatcher() as watcher:
        assert watcher.url is None and not watcher.polling and watcher.poll_once() is None
    monkeypatch.setenv(ENV_METADATA_URL, "off")
    assert resolve_metadata_url() is None
    assert resolve_metadata_url("") is None
    assert resolve_metadata_url("aws") == "http://169.254.169.254" + SPOT_PATH
    assert resolve_metadata_url("127.0.0.1:9") == "http://127.0.0.1:9" + SPOT_PATH
    assert resolve_metadata_url("http://127.0.0.1:9/custom/notice") == "http://127.0.0.1:9/custom/notice"
    with pytest.raises(ValueError):
        resolve_metadata_url("ftp://x")


def test_unreachable_metadata_service_keeps_running():
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with InterruptWatcher(metadata_url=f"http://127.0.0.1:{port}", poll_s=0.02, timeout_s=0.5) as watcher:
        assert wait_for(lambda: watcher.polls >= 3)
        assert not watcher.should_stop


# ---- end to end: a training loop in a child process -----------------------------------------------

TRAINER = textwrap.dedent("""
    import sys, time, torch
    from trader.run.interrupt import InterruptWatcher
    from trader.store import CheckpointStore

    store = CheckpointStore.open(sys.argv[1], keep_last=2)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters())
    step, save_freq = 0, 50
    if store.latest() is not None:                                   # --resume
        ckpt = store.load()
        ckpt.load_into(modules={"policy": model}, objects={"optimizer": opt})
        step = ckpt.metadata["step"]
    with InterruptWatcher() as stop:
        print("ready", step, flush=True)
        while not stop.should_stop:
            loss = model(torch.randn(8, 4)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            step += 1
            if step % save_freq == 0:
                store.save(step, weights={"policy": model}, state={"optimizer": opt}, metadata={"step": step})
            time.sleep(0.001)
        ref = store.save(step, weights={"policy": model}, state={"optimizer": opt},
                         metadata={"step": step, "reason": stop.reason})
        print("final", ref.step, stop.reason, flush=True)
""")


def test_sigterm_final_save_then_resume(tmp_path):
    """A child trains, saving every 50 steps; SIGTERM makes it leave its loop, save a final checkpoint and
    exit 0. Resuming (what the child does at start when the store has a checkpoint) finds that one."""
    import torch

    from trader.store import CheckpointStore

    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop(ENV_METADATA_URL, None)
    store_dir = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, str(script), str(store_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline().split()
        assert first == ["ready", "0"], proc.stderr.read()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    final = out.split()
    assert final[0] == "final" and final[2] == "SIGTERM"
    saved = int(final[1])

    store = CheckpointStore.open(store_dir)
    assert store.latest() == saved and saved > 0
    ckpt = store.load()
    assert ckpt.metadata == {"step": saved, "reason": "SIGTERM"}
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters())
    ckpt.load_into(modules={"policy": model}, objects={"optimizer": opt})
    assert int(opt.state_dict()["state"][0]["step"]) == saved
