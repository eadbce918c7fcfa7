"""S3Store: checkpoints under s3://bucket/prefix on AWS S3 or any S3-compatible store (MinIO, Ceph,
R2, moto), through boto3. The layout and guarantees are those of trader.store.checkpoint; the order
of writes is: the checkpoint's files (sizes checked with HEAD), then its manifest.json, then the
``latest`` pointer. Credentials come from boto3's standard chain (environment, ~/.aws, an instance
profile) and are never printed: reprs and errors name the bucket, the key and the endpoint only.

Some S3-compatible stores reject the integrity checksums that recent botocore sends by default; set
AWS_REQUEST_CHECKSUM_CALCULATION=when_required for those (the store's own sha256s still hold).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from trader.store.checkpoint import CheckpointStore
from trader.store.errors import StoreError
from trader.store.layout import MANIFEST, POINTER, parse_step_dir, step_dir


def _redact_url(url: str | None) -> str | None:
    """The URL without user:password@, query string or fragment (works on malformed URLs too)."""
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        rest = rest.rsplit("@", 1)[1]
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{rest}" if sep else rest


def _endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3Store(CheckpointStore):
    """Checkpoints under s3://bucket/prefix. ``endpoint_url``: else AWS_ENDPOINT_URL_S3 or
    AWS_ENDPOINT_URL, else boto3's default (AWS). ``client``: a ready boto3 S3 client instead.
    ``staging_dir``: where checkpoints are written before upload and downloaded before parsing (the
    system temp folder by default; it needs room for one checkpoint). ``addressing_style``: "path"
    (default with a custom endpoint), "virtual" or "auto"."""

    def __init__(self, bucket: str, prefix: str = "", *, keep_last: int | None = 3, endpoint_url: str | None = None,
                 region_name: str | None = None, client: Any = None, staging_dir: str | os.PathLike | None = None,
                 addressing_style: str | None = None) -> None:
        super().__init__(keep_last)
        if not bucket:
            raise ValueError("S3Store: empty bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or _endpoint_from_env()
        self.staging_dir = Path(staging_dir) if staging_dir else None
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if client is None:
            import boto3
            from botocore.config import Config

            style = addressing_style or ("path" if self.endpoint_url else "auto")
            config = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10, read_timeout=120,
                            s3={"addressing_style": style})
            client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, region_name=region_name,
                                                    config=config)
        self._client = client

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> "S3Store":
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"{uri}: expected s3://bucket[/prefix]")
        return cls(parts.netloc, parts.path, **kwargs)

    def __repr__(self) -> str:
        endpoint = _redact_url(self.endpoint_url) or "default"
        return f"S3Store({self.uri!r}, endpoint={endpoint!r}, keep_last={self.keep_last})"

    # ---- keys and errors ------------------------------------------------------------------------
    def _key(self, rel: str = "") -> str:
        return f"{self.prefix}/{rel}" if self.prefix and rel else (rel or self.prefix)

    def _location(self, rel: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(rel)}".rstrip("/")

    def _error(self, exc: Exception, rel: str, action: str) -> StoreError:
        """A StoreError naming the object and the S3 error code and message, never credentials."""
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            what = f"{err.get('Code', '?')}: {err.get('Message', '')}".rstrip(": ")
        elif isinstance(exc, NoCredentialsError):
            what = "no AWS credentials found (boto3's chain: environment, ~/.aws, instance profile)"
        else:
            what = f"{type(exc).__name__}: {exc}"
        endpoint = _redact_url(self.endpoint_url) or "default endpoint"
        if self.endpoint_url:
            what = what.replace(self.endpoint_url, endpoint)
        what = re.sub(r"://[^\s\"'@]*@", "://", what)
        return StoreError(f"{action} {self._location(rel)} ({endpoint}): {what}")

    @staticmethod
    def _is_missing(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def _call(self, action: str, rel: str, fn, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, rel, action) from None

    # ---- primitives -----------------------------------------------------------------------------
    def _read_bytes(self, rel: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
        except (ClientError, BotoCoreError) as e:
            if self._is_missing(e):
                return None
            raise self._error(e, rel, "reading") from None

    def _keys(self, rel: str = "") -> list[str]:
        """Every key under the store's prefix (or under ``rel`` within it)."""
        base = self._key(rel)
        prefix = f"{base}/" if base else ""
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")

        def run() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))

        self._call("listing", rel, run)
        return keys

    def _scan(self) -> dict[int, bool]:
        root = f"{self.prefix}/" if self.prefix else ""
        out: dict[int, bool] = {}
        for key in self._keys():
            parts = key[len(root):].split("/")
            if len(parts) < 2:
                continue
            s = parse_step_dir(parts[0])
            if s is None:
                continue
            out[s] = out.get(s, False) or (len(parts) == 2 and parts[1] == MANIFEST)
        return out

    @contextmanager
    def _staging(self, step: int) -> Iterator[Path]:
        if self.staging_dir is not None:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"trader-{step_dir(step)}-", dir=self.staging_dir))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _delete_keys(self, keys: list[str], rel: str) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            resp = self._call("deleting", rel, self._client.delete_objects, Bucket=self.bucket,
                              Delete={"Objects": batch, "Quiet": True})
            errors = resp.get("Errors") or []
            if errors:
                e = errors[0]
                raise StoreError(f"deleting s3://{self.bucket}/{e.get('Key')}: {e.get('Code')}: {e.get('Message')}")

    def _delete_step(self, step: int) -> None:
        rel = step_dir(step)
        manifest_key = self._key(f"{rel}/{MANIFEST}")
        keys = self._keys(rel)
        if manifest_key in keys:  # first, so that a crash half-way leaves a partial checkpoint, never a lying one
            self._delete_keys([manifest_key], rel)
        self._delete_keys([k for k in keys if k != manifest_key], rel)

    def _upload(self, path: Path, rel: str) -> None:
        key = self._key(rel)
        self._call("uploading", rel, self._client.upload_file, str(path), self.bucket, key)
        head = self._call("checking", rel, self._client.head_object, Bucket=self.bucket, Key=key)
        size = path.stat().st_size
        if int(head.get("ContentLength", -1)) != size:
            raise StoreError(f"uploading {self._location(rel)}: stored {head.get('ContentLength')} bytes, "
                             f"sent {size}")

    def _publish(self, step: int, staging: Path, files: list[str]) -> None:
        rel = step_dir(step)
        if self._keys(rel):  # a step saved again: make it partial first, then replace it
            self._delete_step(step)
        for f in files:
            self._upload(staging / f, f"{rel}/{f}")
        self._upload(staging / MANIFEST, f"{rel}/{MANIFEST}")

    def _write_pointer(self, data: bytes) -> None:
        self._call("writing", POINTER, self._client.put_object, Bucket=self.bucket, Key=self._key(POINTER),
                   Body=data, ContentType="application/json")

    @contextmanager
    def _local_file(self, rel: str) -> Iterator[Path | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.staging_dir is not None:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="trader-load-", dir=self.staging_dir))
        try:
            path: Path | None = tmp / Path(rel).name
            try:
                self._client.download_file(self.bucket, self._key(rel), str(path))
            except (ClientError, BotoCoreError) as e:
                if not self._is_missing(e):
                    raise self._error(e, rel, "downloading") from None
                path = None
            yield path
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["S3Store"]
