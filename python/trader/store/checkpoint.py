"""Checkpoints in a local folder or under s3://bucket/prefix, behind one interface.

    store = open_store("runs/x/checkpoints")                      # or "s3://bucket/prefix"
    ref = store.save(step, weights={"policy": model}, state={"optimizer": opt, "rng": rng}, metadata={...})
    ckpt = store.load()                                            # latest; or store.load(step)
    ckpt.load_into(modules={"policy": model}, objects={"optimizer": opt})

What goes where
- ``weights``: {module name: nn.Module or state_dict of tensors}; one safetensors file per module
  (``weights/{name}.safetensors``), readable without pickle by any safetensors loader.
- ``state``: {name: value}; one file per name. A top-level numpy array is written as ``state/{name}.npy``
  (``np.save``, no pickle). Anything else (optimizer state dicts, RNG states, replay buffers as dicts of
  tensors, counters) is written with ``torch.save`` as ``state/{name}.pt`` and read back with
  ``torch.load(weights_only=True)``: tensors, None/bool/int/float/complex/str/bytes, torch.Size/dtype/
  device and dict/list/tuple/set containers only, which ``save`` checks before writing anything. Numpy
  arrays nested in a state value (``np.random.get_state()``'s key array, say) are stored as tensors and
  turned back into arrays on load (their paths are listed in the manifest); numpy scalars become Python
  numbers. Objects with a ``state_dict()`` method (optimizers, a replay buffer) are saved as their
  ``state_dict()``; ``Checkpoint.load_into`` hands the loaded dicts back to ``load_state_dict``.
- ``metadata``: a small JSON object (step counters, env cursors, config, algorithm name) stored inline in
  the manifest.

Layout (the same file names locally and on S3, ``{root}`` being the folder or ``bucket/prefix``)::

    {root}/latest                                   pointer, written last: {"step", "manifest", "sha256"}
    {root}/step_000000001000/manifest.json          format, step, metadata, files [{path, size, sha256, ...}]
    {root}/step_000000001000/weights/policy.safetensors
    {root}/step_000000001000/state/optimizer.pt
    {root}/step_000000001000/state/buffer.npy

Atomicity: locally, a checkpoint is written under ``{root}/.tmp-step_...`` (every file fsynced), then the
folder is renamed to ``step_...``, then ``latest`` is replaced (temp file, fsync, ``os.replace``). On S3
the files are uploaded first (their sizes checked), ``manifest.json`` next, ``latest`` last. A checkpoint
without a manifest is partial and never counts: ``latest()`` skips it, ``list()`` leaves it out. The
pointer carries the manifest's sha256, and every manifest carries a checksum of its own content, so a
torn or edited manifest is detected; ``load`` checks every file's size and sha256 before parsing it and
raises ``CheckpointError`` naming the checkpoint, the file and the problem.

Rotation (after the pointer is written): the ``keep_last`` checkpoints with the highest steps are kept,
and so is the one ``latest`` points to, whatever its step; partial checkpoints below the saved step
(left by a crash) are removed. One writer per store; readers may run beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping

import numpy as np

from trader.store.encoding import decode_state, encode_state, weights_tensors
from trader.store.errors import CheckpointError
from trader.store.files import fsync_dir, fsync_file, sha256_file
from trader.store.layout import FORMAT, MANIFEST, POINTER, VERSION, check_name, manifest_checksum, step_dir

log = logging.getLogger("trader.store")

@dataclass(frozen=True)
class CheckpointRef:
    """A saved checkpoint: its step, where it is, and the sha256 of its manifest."""

    step: int
    uri: str
    manifest_sha256: str


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``weights``: {module: {param: tensor}}; ``state``: {name: value};
    ``metadata``: the JSON given to ``save``; ``manifest``: the whole manifest."""

    step: int
    weights: dict[str, dict[str, Any]]
    state: dict[str, Any]
    metadata: dict[str, Any]
    manifest: dict[str, Any]
    ref: CheckpointRef
    created: float = field(default=0.0)

    def load_into(self, modules: Mapping[str, Any] | None = None, objects: Mapping[str, Any] | None = None,
                  strict: bool = True) -> None:
        """``modules[name].load_state_dict(weights[name])`` and ``objects[name].load_state_dict(state[name])``
        (optimizers, schedulers, buffers). A name missing from the checkpoint raises KeyError."""
        for name, module in (modules or {}).items():
            if name not in self.weights:
                raise KeyError(f"checkpoint step {self.step} has no weights {name!r} (has {sorted(self.weights)})")
            module.load_state_dict(self.weights[name], strict=strict)
        for name, obj in (objects or {}).items():
            if name not in self.state:
                raise KeyError(f"checkpoint step {self.step} has no state {name!r} (has {sorted(self.state)})")
            obj.load_state_dict(self.state[name])


class CheckpointStore(ABC):
    """Checkpoints in a folder (trader.store.local.LocalStore) or under s3://bucket/prefix
    (trader.store.s3.S3Store); ``trader.store.open_store(uri)`` picks one. See the module doc."""

    uri: str
    keep_last: int | None

    def __init__(self, keep_last: int | None) -> None:
        if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError(f"keep_last must be a positive integer or None, got {keep_last!r}")
        self.keep_last = keep_last

    # ---- backend primitives ---------------------------------------------------------------------
    @abstractmethod
    def _location(self, rel: str = "") -> str:
        """A printable address of ``rel`` inside the store."""

    @abstractmethod
    def _read_bytes(self, rel: str) -> bytes | None:
        """A small object's content, None if it does not exist."""

    @abstractmethod
    def _scan(self) -> dict[int, bool]:
        """{step: has a manifest} for every step folder (complete or partial)."""

    @abstractmethod
    @contextmanager
    def _staging(self, step: int) -> Iterator[Path]:
        """A local empty folder to write a checkpoint in; removed afterwards whatever happens."""

    @abstractmethod
    def _publish(self, step: int, staging: Path, files: list[str]) -> None:
        """Make the staged checkpoint (files, then manifest.json) visible at step_dir(step)."""

    @abstractmethod
    def _write_pointer(self, data: bytes) -> None:
        """Replace ``latest`` atomically."""

    @abstractmethod
    def _delete_step(self, step: int) -> None:
        """Remove a checkpoint, its manifest first."""

    @abstractmethod
    @contextmanager
    def _local_file(self, rel: str) -> Iterator[Path | None]:
        """A local path holding the object ``rel`` (downloaded if need be), None if it does not exist."""

    def _cleanup_stale(self) -> None:
        """Remove leftovers of crashed saves that are not checkpoints (temporary folders)."""

    # ---- save -----------------------------------------------------------------------------------
    def save(self, step: int, weights: Mapping[str, Any] | None = None, state: Mapping[str, Any] | None = None,
             metadata: Mapping[str, Any] | None = None) -> CheckpointRef:
        """Write checkpoint ``step`` and point ``latest`` at it, then rotate. ``weights``: {name: nn.Module
        or state_dict}; ``state``: {name: value or object with state_dict()}; ``metadata``: JSON object.
        Everything is checked before anything is written: a TypeError/ValueError leaves the store as it was.
        Saving a step that exists replaces it."""
        import torch
        from safetensors.torch import save_file

        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        step = int(step)
        weights, state, metadata = dict(weights or {}), dict(state or {}), dict(metadata or {})
        try:
            metadata_json = json.loads(json.dumps(metadata))
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadata must be JSON-serializable: {e}") from None

        # prepare (and validate) everything before writing
        weight_files = {check_name("weights", n): weights_tensors(n, v, torch) for n, v in weights.items()}
        state_files: dict[str, tuple[str, Any, list]] = {}
        for name, value in state.items():
            check_name("state", name)
            if hasattr(value, "state_dict") and callable(value.state_dict) and not isinstance(value, torch.Tensor):
                value = value.state_dict()
            if isinstance(value, np.ndarray) and not value.dtype.hasobject and value.dtype.kind in "biufc":
                state_files[name] = ("npy", value, [])
            else:
                np_paths: list = []
                state_files[name] = ("torch", encode_state(value, [], np_paths, torch, f"state[{name!r}]"), np_paths)

        entries: list[dict[str, Any]] = []
        with self._staging(step) as staging:
            (staging / "weights").mkdir()
            (staging / "state").mkdir()
            for name, tensors in weight_files.items():
                rel = f"weights/{name}.safetensors"
                save_file(tensors, str(staging / rel), metadata={"format": FORMAT, "step": str(step), "module": name})
                entries.append({"path": rel, "kind": "weights", "name": name, "encoding": "safetensors"})
            for name, (encoding, value, np_paths) in state_files.items():
                if encoding == "npy":
                    rel = f"state/{name}.npy"
                    with open(staging / rel, "wb") as f:
                        np.save(f, value, allow_pickle=False)
                    entries.append({"path": rel, "kind": "state", "name": name, "encoding": "npy"})
                else:
                    rel = f"state/{name}.pt"
                    torch.save(value, staging / rel)
                    entries.append({"path": rel, "kind": "state", "name": name, "encoding": "torch",
                                    "numpy_paths": np_paths})
            for entry in entries:
                path = staging / entry["path"]
                fsync_file(path)
                entry["size"], entry["sha256"] = sha256_file(path)
            now = time.time()
            manifest: dict[str, Any] = {
                "format": FORMAT, "version": VERSION, "step": step,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "created_unix": now,
                "metadata": metadata_json, "files": entries,
                "library": {"torch": torch.__version__, "numpy": np.__version__},
            }
            manifest["checksum"] = manifest_checksum(manifest)
            manifest_bytes = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
            (staging / MANIFEST).write_bytes(manifest_bytes)
            fsync_file(staging / MANIFEST)
            for sub in ("weights", "state", ""):
                fsync_dir(staging / sub if sub else staging)
            self._publish(step, staging, [e["path"] for e in entries])

        sha = hashlib.sha256(manifest_bytes).hexdigest()
        pointer = {"step": step, "manifest": f"{step_dir(step)}/{MANIFEST}", "sha256": sha}
        self._write_pointer(json.dumps(pointer).encode())
        self._rotate(step)
        ref = CheckpointRef(step=step, uri=self._location(step_dir(step)), manifest_sha256=sha)
        log.info("checkpoint saved: %s", ref.uri)
        return ref

    def _rotate(self, saved: int) -> None:
        found = self._scan()
        for s, complete in sorted(found.items()):
            if not complete and s < saved:
                log.info("removing partial checkpoint %s", self._location(step_dir(s)))
                self._delete_step(s)
        if self.keep_last is not None:
            complete = sorted(s for s, ok in found.items() if ok)
            keep = set(complete[-self.keep_last:]) | {saved}
            for s in complete:
                if s not in keep:
                    log.info("removing old checkpoint %s", self._location(step_dir(s)))
                    self._delete_step(s)
        self._cleanup_stale()

    # ---- read -----------------------------------------------------------------------------------
    def _pointer(self) -> dict | None:
        raw = self._read_bytes(POINTER)
        if raw is None:
            return None
        try:
            p = json.loads(raw)
            if not isinstance(p, dict) or not isinstance(p.get("step"), int) or not isinstance(p.get("sha256"), str):
                raise ValueError("not a pointer object")
            return p
        except ValueError as e:
            log.warning("%s is unreadable (%s); using the newest complete checkpoint", self._location(POINTER), e)
            return None

    def _manifest(self, step: int, expect_sha: str | None = None) -> tuple[dict, str]:
        where = self._location(step_dir(step))
        raw = self._read_bytes(f"{step_dir(step)}/{MANIFEST}")
        if raw is None:
            raise CheckpointError(where, "missing (partial checkpoint or removed)", MANIFEST)
        sha = hashlib.sha256(raw).hexdigest()
        if expect_sha is not None and sha != expect_sha:
            raise CheckpointError(where, f"sha256 mismatch: expected {expect_sha}, found {sha}", MANIFEST)
        try:
            manifest = json.loads(raw)
        except ValueError as e:
            raise CheckpointError(where, f"unreadable JSON ({e})", MANIFEST) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CheckpointError(where, f"not a {FORMAT} manifest", MANIFEST)
        if manifest.get("version", 0) > VERSION:
            raise CheckpointError(where, f"format version {manifest.get('version')} is newer than this "
                                         f"reader ({VERSION})", MANIFEST)
        if manifest.get("checksum") != manifest_checksum(manifest):
            raise CheckpointError(where, "checksum mismatch (the manifest was truncated or edited)", MANIFEST)
        if manifest.get("step") != step:
            raise CheckpointError(where, f"holds step {manifest.get('step')}, not {step}", MANIFEST)
        return manifest, sha

    def list(self, include_partial: bool = False) -> list[int]:
        """Steps of the checkpoints that have a manifest (with ``include_partial``, every step folder),
        oldest first. Files are not checked here; ``verify`` or ``load`` does that."""
        return sorted(s for s, ok in self._scan().items() if ok or include_partial)

    def latest(self) -> int | None:
        """The step ``latest`` points to when its manifest is there and matches; otherwise (no pointer,
        or one to a removed or partial checkpoint) the newest checkpoint with a valid manifest; None
        when there is none."""
        pointer = self._pointer()
        if pointer is not None:
            try:
                self._manifest(pointer["step"], pointer["sha256"])
                return pointer["step"]
            except CheckpointError as e:
                log.warning("latest points to a broken checkpoint (%s); using the newest complete one", e)
        for s in reversed(self.list()):
            if pointer is not None and s == pointer["step"]:
                continue
            try:
                self._manifest(s)
                return s
            except CheckpointError as e:
                log.warning("skipping %s", e)
        return None

    def _resolve(self, ref_or_step: CheckpointRef | int | None) -> tuple[int, str | None]:
        if ref_or_step is None:
            step = self.latest()
            if step is None:
                raise CheckpointError(self._location(), "no checkpoint here")
            pointer = self._pointer()
            return step, pointer["sha256"] if pointer and pointer["step"] == step else None
        if isinstance(ref_or_step, CheckpointRef):
            return ref_or_step.step, ref_or_step.manifest_sha256
        if isinstance(ref_or_step, (int, np.integer)) and not isinstance(ref_or_step, bool):
            return int(ref_or_step), None
        raise TypeError(f"expected a step, a CheckpointRef or None, got {ref_or_step!r}")

    def manifest(self, ref_or_step: CheckpointRef | int | None = None) -> dict[str, Any]:
        """A checkpoint's manifest (checked), without reading its files."""
        step, sha = self._resolve(ref_or_step)
        return self._manifest(step, sha)[0]

    @contextmanager
    def _verified(self, step: int, entry: Mapping[str, Any]) -> Iterator[Path]:
        where, rel = self._location(step_dir(step)), entry["path"]
        with self._local_file(f"{step_dir(step)}/{rel}") as path:
            if path is None:
                raise CheckpointError(where, "missing", rel)
            size, sha = sha256_file(path)
            if size != entry["size"]:
                raise CheckpointError(where, f"size mismatch: expected {entry['size']} bytes, found {size} "
                                             "(truncated or partial)", rel)
            if sha != entry["sha256"]:
                raise CheckpointError(where, f"sha256 mismatch: expected {entry['sha256']}, found {sha} (corrupt)", rel)
            yield path

    def verify(self, ref_or_step: CheckpointRef | int | None = None) -> CheckpointRef:
        """Check a checkpoint's manifest and every file's size and sha256; CheckpointError if any is wrong."""
        step, expect = self._resolve(ref_or_step)
        manifest, sha = self._manifest(step, expect)
        for entry in manifest["files"]:
            with self._verified(step, entry):
                pass
        return CheckpointRef(step=step, uri=self._location(step_dir(step)), manifest_sha256=sha)

    def load(self, ref_or_step: CheckpointRef | int | None = None, *, map_location: Any = "cpu",
             include: Collection[str] | None = None, fallback: bool = False) -> Checkpoint:
        """Load a checkpoint (``None``: the latest), checking the manifest and each file's size and sha256
        before parsing it. ``include``: only these weights/state names (others are not read).
        ``fallback``: when the latest is broken, log a warning and load the newest older one that is whole
        (for unattended resumes); without it a broken checkpoint raises CheckpointError."""
        try:
            return self._load(ref_or_step, map_location, include)
        except CheckpointError as first:
            if not fallback or ref_or_step is not None:
                raise
            failed = self.latest()
            for s in reversed(self.list()):
                if failed is not None and s >= failed:
                    continue
                log.warning("%s; falling back to %s", first, self._location(step_dir(s)))
                try:
                    return self._load(s, map_location, include)
                except CheckpointError as e:
                    log.warning("%s", e)
            raise first

    def _load(self, ref_or_step, map_location, include) -> Checkpoint:
        import torch
        from safetensors.torch import load as load_safetensors

        step, expect = self._resolve(ref_or_step)
        manifest, sha = self._manifest(step, expect)
        where = self._location(step_dir(step))
        if include is not None:
            include = set(include)
            unknown = include - {e["name"] for e in manifest["files"]}
            if unknown:
                raise KeyError(f"checkpoint {where} has no {sorted(unknown)}")
        weights: dict[str, dict[str, Any]] = {}
        state: dict[str, Any] = {}
        for entry in manifest["files"]:
            if include is not None and entry["name"] not in include:
                continue
            with self._verified(step, entry) as path:
                try:
                    if entry["encoding"] == "safetensors":
                        tensors = load_safetensors(path.read_bytes())
                        if isinstance(map_location, (str, torch.device)) and str(map_location) != "cpu":
                            tensors = {k: v.to(map_location) for k, v in tensors.items()}
                        weights[entry["name"]] = tensors
                    elif entry["encoding"] == "npy":
                        state[entry["name"]] = np.load(path, allow_pickle=False)
                    elif entry["encoding"] == "torch":
                        value = torch.load(path, map_location=map_location, weights_only=True)
                        state[entry["name"]] = decode_state(value, entry.get("numpy_paths", []))
                    else:
                        raise CheckpointError(where, f"unknown encoding {entry['encoding']!r}", entry["path"])
                except CheckpointError:
                    raise
                except Exception as e:  # checksum matched but the content does not parse
                    raise CheckpointError(where, f"unreadable ({type(e).__name__}: {e})", entry["path"]) from None
        return Checkpoint(step=step, weights=weights, state=state, metadata=manifest.get("metadata", {}),
                          manifest=manifest, created=manifest.get("created_unix", 0.0),
                          ref=CheckpointRef(step=step, uri=where, manifest_sha256=sha))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r}, keep_last={self.keep_last})"

