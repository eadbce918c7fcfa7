"""Checkpoint storage for training runs: a local folder or s3://bucket/prefix behind one interface
(trader.store.checkpoint, trader.store.s3), and InterruptWatcher (trader.store.interrupt), which turns
SIGTERM, SIGINT and spot interruption notices into a flag for a final save."""

from .checkpoint import (Checkpoint, CheckpointError, CheckpointRef, CheckpointStore, LocalStore, StoreError,
                         step_dir)
from .interrupt import InterruptWatcher, resolve_metadata_url


def __getattr__(name: str):
    if name == "S3Store":  # boto3 is imported only when S3 is used
        from .s3 import S3Store

        return S3Store
    raise AttributeError(name)


__all__ = ["Checkpoint", "CheckpointError", "CheckpointRef", "CheckpointStore", "InterruptWatcher", "LocalStore",
           "S3Store", "StoreError", "resolve_metadata_url", "step_dir"]
