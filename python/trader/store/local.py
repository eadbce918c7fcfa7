"""LocalStore: checkpoints in a folder. Written under ``{root}/.tmp-step_...`` (every file fsynced), renamed
to ``step_...``, then ``latest`` replaced (temp file, fsync, ``os.replace``); the layout and guarantees are
those of trader.store.checkpoint."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from trader.store.checkpoint import CheckpointStore
from trader.store.errors import StoreError
from trader.store.files import fsync_dir
from trader.store.layout import MANIFEST, POINTER, parse_step_dir, step_dir


class LocalStore(CheckpointStore):
    """Checkpoints in a folder (created on the first save)."""

    STALE_S = 3600.0  # temporary folders older than this are leftovers of crashed saves

    def __init__(self, root: str | os.PathLike, *, keep_last: int | None = 3) -> None:
        super().__init__(keep_last)
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)
        self._own_tmp: set[str] = set()

    def _location(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    def _read_bytes(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"{self.root / rel}: {e}") from None

    def _scan(self) -> dict[int, bool]:
        out: dict[int, bool] = {}
        try:
            children = list(self.root.iterdir())
        except FileNotFoundError:
            return out
        for child in children:
            s = parse_step_dir(child.name)
            if s is not None and child.is_dir():
                out[s] = (child / MANIFEST).is_file()
        return out

    @contextmanager
    def _staging(self, step: int) -> Iterator[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{step_dir(step)}-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        self._own_tmp.add(tmp.name)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self._own_tmp.discard(tmp.name)

    def _publish(self, step: int, staging: Path, files: list[str]) -> None:
        target = self.root / step_dir(step)
        trash = None
        if target.exists():
            trash = self.root / f".trash-{step_dir(step)}-{uuid.uuid4().hex[:12]}"
            os.replace(target, trash)
        os.replace(staging, target)
        fsync_dir(self.root)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def _write_pointer(self, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{POINTER}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / POINTER)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(self.root)

    def _delete_step(self, step: int) -> None:
        target = self.root / step_dir(step)
        (target / MANIFEST).unlink(missing_ok=True)
        fsync_dir(target)
        shutil.rmtree(target, ignore_errors=True)

    @contextmanager
    def _local_file(self, rel: str) -> Iterator[Path | None]:
        path = self.root / rel
        yield path if path.is_file() else None

    def _cleanup_stale(self) -> None:
        now = time.time()
        for child in self.root.iterdir():
            if child.name.startswith((".tmp-", ".trash-", f".{POINTER}.")) and child.name not in self._own_tmp:
                try:
                    if now - child.stat().st_mtime > self.STALE_S:
                        if child.is_dir():
                            shutil.rmtree(child, ignore_errors=True)
                        else:
                            child.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
