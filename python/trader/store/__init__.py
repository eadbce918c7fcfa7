"""Checkpoint storage for training runs: a local folder or s3://bucket/prefix behind one interface.

    checkpoint.py   Checkpoint, CheckpointRef and the CheckpointStore base: save, load, verify, rotate
    local.py        LocalStore: a folder
    s3.py           S3Store: s3://bucket/prefix through boto3 (imported when an S3Store is made)
    uri.py          open_store(uri): the store a folder, file:// or s3:// URI names
    layout.py       names on storage: ``latest``, ``step_000000001000/``, ``manifest.json``
    encoding.py     weights and state values as files
    files.py        sha256 and fsync of local files
    errors.py       StoreError, CheckpointError
"""

from trader.store.checkpoint import Checkpoint, CheckpointRef, CheckpointStore
from trader.store.errors import CheckpointError, StoreError
from trader.store.layout import parse_step_dir, step_dir
from trader.store.local import LocalStore
from trader.store.s3 import S3Store
from trader.store.uri import open_store

__all__ = ["Checkpoint", "CheckpointError", "CheckpointRef", "CheckpointStore", "LocalStore", "S3Store",
           "StoreError", "open_store", "parse_step_dir", "step_dir"]
