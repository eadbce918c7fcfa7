"""Names on storage, the same locally and on S3: the ``latest`` pointer, the step folders
(``step_000000001000``: the one place that pattern is declared), ``manifest.json`` and its self-checksum,
and the rule for weights / state file names."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping

FORMAT = "trader-checkpoint"
VERSION = 1
POINTER = "latest"
MANIFEST = "manifest.json"
_STEP_DIR = "step_{:012d}"
_STEP_RE = re.compile(r"^step_(\d{12,})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def step_dir(step: int) -> str:
    """The folder (key prefix) of a checkpoint: step_000000001000."""
    return _STEP_DIR.format(step)


def parse_step_dir(name: str) -> int | None:
    """The step of a folder named by ``step_dir``; None for any other name."""
    m = _STEP_RE.match(name)
    return int(m.group(1)) if m else None


def check_name(kind: str, name: Any) -> str:
    """``name`` if it can be a weights / state file name; ValueError naming ``kind`` otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{kind} name {name!r}: use letters, digits, '_', '.', '-' (a file name, at most 128)")
    return name


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own ``checksum`` field."""
    canonical = json.dumps({k: v for k, v in manifest.items() if k != "checksum"}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()
