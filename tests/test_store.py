"""trader.store checkpoints: a local folder and S3 (a real moto server on 127.0.0.1), the same tests for
both: round trips of weights, optimizer and RNG state, rotation, and corrupt, partial or removed files."""

from __future__ import annotations

import json
import logging
import random
import uuid

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from trader.store import CheckpointError, LocalStore, StoreError, open_store, parse_step_dir, step_dir  # noqa: E402

ACCESS_KEY = "AKIAIOSFODNN7TESTKEY"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTESTSECRET"


# =====================================================================================================
# backends
# =====================================================================================================

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
def aws_env(monkeypatch, tmp_path):
    """Fake credentials only, no profile files, no instance metadata: nothing can reach real AWS."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class LocalBackend:
    name = "local"

    def __init__(self, tmp_path):
        self.root = tmp_path / "ckpt"

    def make(self, **kw):
        return open_store(self.root, **kw)

    def rels(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def write(self, rel: str, data: bytes) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(data)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink()


class S3Backend:
    name = "s3"

    def __init__(self, endpoint):
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.bucket = f"ckpt-{uuid.uuid4().hex[:12]}"
        self.prefix = "runs/exp1"
        self.client.create_bucket(Bucket=self.bucket)

    def make(self, **kw):
        kw.setdefault("endpoint_url", self.endpoint)
        return open_store(f"s3://{self.bucket}/{self.prefix}", **kw)

    def rels(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + "/")
        return sorted(o["Key"][len(self.prefix) + 1:] for p in pages for o in p.get("Contents", []))

    def read(self, rel: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}")["Body"].read()

    def write(self, rel: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}", Body=data)

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}")


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return LocalBackend(tmp_path)
    request.getfixturevalue("aws_env")
    return S3Backend(request.getfixturevalue("moto_endpoint"))


# =====================================================================================================
# a small model and what a learner saves
# =====================================================================================================

def make_model(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt


def train(model, opt, steps: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=g)
        loss = (model(x) - x[:, :3]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "generator": np.random.default_rng(7).bit_generator.state}


def tiny_save(store, step: int, value: float = 0.0):
    return store.save(step, weights={"policy": {"w": torch.full((4,), float(step) + value)}},
                      state={"optimizer": {"lr": 0.1, "step": torch.tensor(step)}}, metadata={"step": step})


def files_of(backend, step: int) -> list[str]:
    return [r for r in backend.rels() if r.startswith(step_dir(step) + "/")]


# =====================================================================================================
# round trips
# =====================================================================================================

def test_round_trip_model_optimizer_rng_metadata(backend):
    store = backend.make()
    model, opt = make_model()
    train(model, opt, 5, seed=1)
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    rng = rng_state()
    expected_draws = (random.random(), np.random.rand(3), torch.rand(3))
    metadata = {"global_step": 5, "n_updates": 5, "env_cursors": [0, 17, 42], "algo": "ppo", "lr": 1e-2,
                "nested": {"a": [1, 2, {"b": None}]}}
    ref = store.save(5, weights={"policy": model}, state={"optimizer": opt, "rng": rng}, metadata=metadata)
    assert ref.step == 5 and store.latest() == 5 and store.list() == [5]
    assert ref.uri.endswith(step_dir(5))

    model2, opt2 = make_model(seed=99)
    ckpt = store.load()
    assert ckpt.step == 5 and ckpt.metadata == metadata and ckpt.ref == ref
    ckpt.load_into(modules={"policy": model2}, objects={"optimizer": opt2})
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)

    # the reloaded optimizer continues exactly as the original
    train(model, opt, 3, seed=2)
    train(model2, opt2, 3, seed=2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)

    # RNG states: python, numpy legacy (a tuple holding a uint32 array), numpy Generator, torch
    state = ckpt.state["rng"]
    assert isinstance(state["numpy"], tuple) and isinstance(state["numpy"][1], np.ndarray)
    assert state["numpy"][1].dtype == np.uint32
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    assert random.random() == expected_draws[0]
    assert np.array_equal(np.random.rand(3), expected_draws[1])
    assert torch.equal(torch.rand(3), expected_draws[2])
    g = np.random.default_rng()
    g.bit_generator.state = state["generator"]
    assert g.random() == np.random.default_rng(7).random()

    # the manifest lists every file with its size and sha256, and the weights are plain safetensors
    manifest = ckpt.manifest
    paths = {f["path"] for f in manifest["files"]}
    assert paths == {"weights/policy.safetensors", "state/optimizer.pt", "state/rng.pt"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"])
    from safetensors.torch import load as load_st

    raw = load_st(backend.read(f"{step_dir(5)}/weights/policy.safetensors"))
    assert set(raw) == set(model.state_dict())
    pointer = json.loads(backend.read("latest"))
    assert pointer["step"] == 5 and pointer["manifest"] == f"{step_dir(5)}/manifest.json"


def test_arrays_buffers_and_partial_loads(backend):
    store = backend.make()
    buffer = {"observations": torch.randn(100, 8), "actions": torch.randint(0, 5, (100,)), "pos": 100,
              "full": False}
    cursors = np.array([3, 5, 8], dtype=np.int64)
    nested = {"ids": np.arange(6, dtype=np.uint16).reshape(2, 3), "mask": np.array([True, False]),
              "scalar": np.float64(2.5), "t": (np.ones(2, np.float32), "x")}
    store.save(7, weights={"actor": {"w": torch.ones(2, 2)}, "critic": {"w": torch.zeros(3)}},
               state={"replay_buffer": buffer, "cursors": cursors, "nested": nested})
    names = {f["path"] for f in store.manifest()["files"]}
    assert "state/cursors.npy" in names and "state/replay_buffer.pt" in names

    ckpt = store.load()
    assert torch.equal(ckpt.state["replay_buffer"]["observations"], buffer["observations"])
    assert ckpt.state["replay_buffer"]["pos"] == 100
    assert isinstance(ckpt.state["cursors"], np.ndarray) and np.array_equal(ckpt.state["cursors"], cursors)
    n = ckpt.state["nested"]
    assert n["ids"].dtype == np.uint16 and np.array_equal(n["ids"], nested["ids"])
    assert n["mask"].dtype == np.bool_ and n["scalar"] == 2.5 and type(n["scalar"]) is float
    assert isinstance(n["t"], tuple) and n["t"][1] == "x" and n["t"][0].dtype == np.float32

    only = store.load(include=["actor"])
    assert set(only.weights) == {"actor"} and only.state == {}
    with pytest.raises(KeyError):
        store.load(include=["nope"])


def test_tied_weights_and_unstorable_values(backend):
    store = backend.make()
    shared = torch.randn(4, 4)
    ref = store.save(1, weights={"m": {"a": shared, "b": shared, "c": shared[1]}})
    w = store.load(ref).weights["m"]
    assert torch.equal(w["a"], shared) and torch.equal(w["b"], shared) and torch.equal(w["c"], shared[1])

    before = backend.rels()

    class Custom:
        pass

    with pytest.raises(TypeError, match=r"state\['x'\]\['obj'\]: .*Custom"):
        store.save(2, state={"x": {"obj": Custom()}})
    with pytest.raises(TypeError, match="not a tensor"):
        store.save(2, weights={"m": {"a": 1.0}})
    with pytest.raises(TypeError, match="JSON"):
        store.save(2, metadata={"x": object()})
    with pytest.raises(ValueError, match="name"):
        store.save(2, weights={"../evil": {"a": torch.ones(1)}})
    with pytest.raises(ValueError):
        store.save(-1)
    assert backend.rels() == before and store.latest() == 1


def test_empty_store(backend):
    store = backend.make()
    assert store.latest() is None and store.list() == []
    with pytest.raises(CheckpointError, match="no checkpoint"):
        store.load()


# =====================================================================================================
# rotation
# =====================================================================================================

def test_rotation_keeps_last_n(backend):
    store = backend.make(keep_last=2)
    for step in (100, 200, 300, 400, 500):
        tiny_save(store, step)
    assert store.list() == [400, 500] and store.latest() == 500
    steps_on_storage = {r.split("/")[0] for r in backend.rels() if r != "latest"}
    assert steps_on_storage == {step_dir(400), step_dir(500)}
    assert float(store.load().weights["policy"]["w"][0]) == 500
    assert store.load(400).step == 400


def test_rotation_never_removes_latest(backend):
    """Saving a lower step (a run resumed from an older checkpoint) points latest at it, and rotation
    keeps it although it is not among the highest steps."""
    store = backend.make(keep_last=2)
    for step in (10, 20, 30):
        tiny_save(store, step)
    tiny_save(store, 5)
    assert store.latest() == 5
    assert store.list() == [5, 20, 30]
    assert store.load().step == 5


def test_saving_a_step_again_replaces_it(backend):
    store = backend.make()
    tiny_save(store, 10, value=0.0)
    tiny_save(store, 10, value=0.5)
    assert store.list() == [10]
    assert float(store.load().weights["policy"]["w"][0]) == 10.5
    store.verify()


def test_keep_all(backend):
    store = backend.make(keep_last=None)
    for step in range(1, 6):
        tiny_save(store, step)
    assert store.list() == [1, 2, 3, 4, 5]


# =====================================================================================================
# corruption and partial checkpoints
# =====================================================================================================

def test_flipped_byte_names_the_file(backend):
    store = backend.make()
    tiny_save(store, 1)
    tiny_save(store, 2)
    rel = f"{step_dir(2)}/weights/policy.safetensors"
    data = bytearray(backend.read(rel))
    data[len(data) - 3] ^= 0xFF
    backend.write(rel, bytes(data))
    with pytest.raises(CheckpointError) as e:
        store.load()
    assert e.value.file == "weights/policy.safetensors" and "sha256" in e.value.problem
    assert step_dir(2) in str(e.value) and "weights/policy.safetensors" in str(e.value)
    with pytest.raises(CheckpointError, match="sha256"):
        store.verify(2)
    assert store.load(1).step == 1  # the older one is whole
    assert store.load(include=["optimizer"]).step == 2  # files that were not touched still load


def test_truncated_file_is_a_size_error(backend):
    store = backend.make()
    tiny_save(store, 1)
    rel = f"{step_dir(1)}/state/optimizer.pt"
    backend.write(rel, backend.read(rel)[:-10])
    with pytest.raises(CheckpointError, match="size mismatch") as e:
        store.load()
    assert e.value.file == "state/optimizer.pt"


def test_missing_file(backend):
    store = backend.make()
    tiny_save(store, 1)
    backend.delete(f"{step_dir(1)}/state/optimizer.pt")
    with pytest.raises(CheckpointError, match="missing") as e:
        store.load()
    assert e.value.file == "state/optimizer.pt" and step_dir(1) in e.value.checkpoint


def test_fallback_loads_the_newest_whole_checkpoint(backend, caplog):
    store = backend.make()
    tiny_save(store, 1)
    tiny_save(store, 2)
    backend.delete(f"{step_dir(2)}/weights/policy.safetensors")
    with caplog.at_level(logging.WARNING, logger="trader.store"):
        ckpt = store.load(fallback=True)
    assert ckpt.step == 1 and "falling back" in caplog.text
    with pytest.raises(CheckpointError):  # an explicit step never falls back
        store.load(2, fallback=True)


def test_partial_checkpoint_is_never_latest(backend):
    """A crash during a save leaves files without a manifest (S3: files upload first) and the pointer
    still on the previous checkpoint: that one stays the latest; the next save removes the leftovers."""
    store = backend.make()
    tiny_save(store, 1)
    tiny_save(store, 2)
    for rel in files_of(backend, 2):
        if not rel.endswith("manifest.json"):
            backend.write(rel.replace(step_dir(2), step_dir(3)), backend.read(rel))
    assert store.latest() == 2 and store.list() == [1, 2] and store.list(include_partial=True) == [1, 2, 3]
    assert store.load().step == 2

    # even with the pointer gone, a partial checkpoint does not count
    backend.delete("latest")
    assert store.latest() == 2
    with pytest.raises(CheckpointError, match="manifest.json: missing"):
        store.load(3)

    tiny_save(store, 4)
    assert store.list(include_partial=True) == [1, 2, 4] or store.list(include_partial=True) == [2, 4]
    assert not files_of(backend, 3)


def test_missing_pointer_uses_newest_complete(backend):
    store = backend.make()
    tiny_save(store, 1)
    tiny_save(store, 2)
    backend.delete("latest")
    assert store.latest() == 2 and store.load().step == 2


def test_removed_manifest_of_latest(backend, caplog):
    store = backend.make()
    tiny_save(store, 1)
    tiny_save(store, 2)
    backend.delete(f"{step_dir(2)}/manifest.json")
    with caplog.at_level(logging.WARNING, logger="trader.store"):
        assert store.latest() == 1
    assert "broken" in caplog.text
    assert store.load().step == 1
    with pytest.raises(CheckpointError, match="missing"):
        store.load(2)


def test_edited_manifest(backend):
    store = backend.make()
    tiny_save(store, 1)
    tiny_save(store, 2)
    rel = f"{step_dir(2)}/manifest.json"
    manifest = json.loads(backend.read(rel))
    manifest["files"][0]["sha256"] = "0" * 64
    backend.write(rel, json.dumps(manifest).encode())
    # the pointer's sha256 no longer matches: latest falls back to step 1, and step 2 is refused
    assert store.latest() == 1
    with pytest.raises(CheckpointError, match="checksum"):
        store.load(2)
    backend.write(rel, b'{"format": "trader-checkpoint", "st')
    with pytest.raises(CheckpointError, match="unreadable JSON"):
        store.load(2)


def test_garbage_pointer(backend):
    store = backend.make()
    tiny_save(store, 1)
    backend.write("latest", b"not json")
    assert store.latest() == 1


# =====================================================================================================
# S3 specifics
# =====================================================================================================

def test_s3_endpoint_from_environment(aws_env, moto_endpoint, monkeypatch):
    backend = S3Backend(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    store = open_store(f"s3://{backend.bucket}/{backend.prefix}", keep_last=2)
    assert store.endpoint_url == moto_endpoint and moto_endpoint in repr(store)
    tiny_save(store, 3)
    assert store.load().step == 3
    assert f"{step_dir(3)}/manifest.json" in backend.rels()


def test_s3_bucket_root_prefix(aws_env, moto_endpoint):
    backend = S3Backend(moto_endpoint)
    store = open_store(f"s3://{backend.bucket}", endpoint_url=moto_endpoint)
    tiny_save(store, 1)
    keys = [o["Key"] for o in backend.client.list_objects_v2(Bucket=backend.bucket)["Contents"]]
    assert "latest" in keys and f"{step_dir(1)}/manifest.json" in keys
    assert store.load().step == 1


def test_s3_credentials_never_shown(aws_env, moto_endpoint):
    store = open_store("s3://no-such-bucket-here/x", endpoint_url=moto_endpoint)
    texts = [repr(store), str(store)]
    with pytest.raises(StoreError) as e:
        tiny_save(store, 1)
    texts.append(str(e.value))
    assert "no-such-bucket-here" in str(e.value) and "NoSuchBucket" in str(e.value)
    with pytest.raises(StoreError) as e2:
        store.latest()
    texts.append(str(e2.value))
    host = moto_endpoint.split("//")[1]
    leaky = open_store("s3://b/p", endpoint_url=f"http://user:{SECRET_KEY}@{host}")
    texts.append(repr(leaky))
    from botocore.exceptions import EndpointConnectionError

    texts.append(str(leaky._error(EndpointConnectionError(endpoint_url=leaky.endpoint_url), "latest", "reading")))
    assert "user" not in texts[-1] and "s3://b/p/latest" in texts[-1]
    for text in texts:
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_open_uris(tmp_path):
    assert isinstance(open_store(tmp_path / "a"), LocalStore)
    store = open_store(f"file://{tmp_path}/b")
    assert isinstance(store, LocalStore) and store.root == tmp_path / "b"
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_store("gs://bucket/x")
    with pytest.raises(ValueError):
        open_store(tmp_path, keep_last=0)
    with pytest.raises(ValueError):
        open_store(tmp_path, endpoint_url="http://127.0.0.1:1")


def test_step_folder_names():
    assert step_dir(1000) == "step_000000001000" and parse_step_dir(step_dir(1000)) == 1000
    assert parse_step_dir(step_dir(10**13)) == 10**13
    for other in ("step_1000", "step_00000000100a", ".tmp-step_000000001000-0123456789ab", "latest"):
        assert parse_step_dir(other) is None


def test_local_save_leaves_no_temporaries(tmp_path):
    store = open_store(tmp_path / "c", keep_last=2)
    for step in range(4):
        tiny_save(store, step)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["latest", step_dir(2), step_dir(3)]


def test_same_layout_locally_and_on_s3(tmp_path, aws_env, moto_endpoint):
    """A local checkpoint folder copied to S3 as it is (aws s3 sync) is a valid S3 store, and back."""
    local = open_store(tmp_path / "run")
    model, opt = make_model()
    train(model, opt, 2, seed=3)
    local.save(2, weights={"policy": model}, state={"optimizer": opt}, metadata={"k": 1})
    s3 = S3Backend(moto_endpoint)
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            s3.write(str(path.relative_to(tmp_path / "run")), path.read_bytes())
    remote = s3.make()
    assert remote.latest() == 2
    ckpt = remote.load()
    assert ckpt.metadata == {"k": 1} and ckpt.ref.manifest_sha256 == local.verify().manifest_sha256
    for name, t in model.state_dict().items():
        assert torch.equal(ckpt.weights["policy"][name], t)
