"""The two errors of the checkpoint store: StoreError (storage could not be read or written) and its
subclass CheckpointError (a checkpoint is missing, partial or corrupt, with the checkpoint and file named)."""

from __future__ import annotations


class StoreError(Exception):
    """The store could not be read or written (permissions, network, a missing bucket)."""


class CheckpointError(StoreError):
    """A checkpoint is missing, partial or corrupt. ``checkpoint``: where it is; ``file``: the file within
    it (None for the checkpoint as a whole); ``problem``: what is wrong."""

    def __init__(self, checkpoint: str, problem: str, file: str | None = None):
        self.checkpoint, self.problem, self.file = checkpoint, problem, file
        where = f"{checkpoint}: {file}" if file else checkpoint
        super().__init__(f"checkpoint {where}: {problem}")
