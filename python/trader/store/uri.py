"""open_store: the checkpoint store a URI names, a LocalStore for a folder path or file:// URI, an S3Store
for s3://bucket[/prefix]. The one place that knows every backend, so the backends need not know each other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trader.store.checkpoint import CheckpointStore
from trader.store.local import LocalStore
from trader.store.s3 import S3Store


def open_store(uri: str | os.PathLike, *, keep_last: int | None = 3, endpoint_url: str | None = None,
               **s3_options: Any) -> CheckpointStore:
    """A LocalStore for a folder path or file:// URI, an S3Store for s3://bucket[/prefix]. For S3 the
    endpoint is ``endpoint_url``, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else boto3's default;
    credentials come from boto3's standard chain. ``keep_last=None`` keeps every checkpoint.
    ``s3_options``: region_name, client, staging_dir, addressing_style (see S3Store)."""
    text = os.fspath(uri)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme == "s3":
        return S3Store.from_uri(text, keep_last=keep_last, endpoint_url=endpoint_url, **s3_options)
    if s3_options or endpoint_url:
        raise ValueError(f"{text}: endpoint_url and S3 options apply to s3:// URIs only")
    if scheme == "file":
        parts = urlsplit(text)
        return LocalStore(Path(parts.netloc + parts.path), keep_last=keep_last)
    if scheme:
        raise ValueError(f"{text}: unsupported scheme {scheme!r} (a folder, file:// or s3://bucket/prefix)")
    return LocalStore(Path(text), keep_last=keep_last)
