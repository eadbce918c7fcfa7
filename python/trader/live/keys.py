"""API keys for live trading: read from the environment or from a JSON file outside the repository,
never printed, never logged.

* Environment: ``TRADER_API_KEY`` and ``TRADER_API_SECRET``.
* A file (``--keys-file``): ``{"apiKey": "...", "secret": "..."}`` (``api_key`` / ``api_secret`` are
  accepted too). A file inside a git work tree is refused (a secret must never be one ``git add``
  away from a commit); a file that group or others may read gets a warning.

``ApiKeys`` has a redacting ``repr``/``str``, and :class:`RedactingFilter` scrubs both strings from
every log record that passes through a handler it is installed on (``install_redaction``).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

ENV_KEY = "TRADER_API_KEY"
ENV_SECRET = "TRADER_API_SECRET"
REDACTED = "<redacted>"


class KeysError(ValueError):
    """Keys missing, malformed or stored in an unsafe place."""


@dataclass(frozen=True)
class ApiKeys:
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return f"ApiKeys(api_key={self.hint}, secret={REDACTED}, source={self.source!r})"

    __str__ = __repr__

    @property
    def hint(self) -> str:
        """Enough of the key to tell two keys apart in a message; never the secret."""
        k = self.api_key
        return f"{k[:4]}...({len(k)} chars)" if len(k) > 8 else REDACTED

    def ccxt_config(self) -> dict:
        return {"apiKey": self.api_key, "secret": self.secret}

    def redact(self, text: str) -> str:
        return redact(text, (self.api_key, self.secret))


def redact(text: str, secrets) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, REDACTED)
    return text


def git_work_tree(path: Path) -> Path | None:
    """The git work tree holding ``path``, if any."""
    for parent in path.resolve().parents:
        if (parent / ".git").exists():
            return parent
    return None


def load_keys(keys_file: str | os.PathLike | None = None, env=None, *, warn=None) -> ApiKeys | None:
    """Keys from ``keys_file`` if given, else from the environment; None when neither has them."""
    env = os.environ if env is None else env
    if keys_file is not None:
        path = Path(keys_file)
        if not path.is_file():
            raise KeysError(f"keys file {path}: not found")
        repo = git_work_tree(path)
        if repo is not None:
            raise KeysError(f"keys file {path} is inside the git work tree {repo}: move it outside any "
                            "repository (secrets must never be one 'git add' away from a commit)")
        if os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH) and warn is not None:
            warn(f"keys file {path} is readable by group or others: chmod 600 it")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:  # the message quotes no content of the file
            raise KeysError(f"keys file {path}: not valid JSON (line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise KeysError(f"keys file {path}: expected an object {{\"apiKey\": ..., \"secret\": ...}}")
        key = data.get("apiKey", data.get("api_key"))
        secret = data.get("secret", data.get("api_secret"))
        if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
            raise KeysError(f"keys file {path}: needs non-empty strings 'apiKey' and 'secret'")
        return ApiKeys(key, secret, f"file {path}")
    key, secret = env.get(ENV_KEY), env.get(ENV_SECRET)
    if not key and not secret:
        return None
    if not key or not secret:
        missing = ENV_KEY if not key else ENV_SECRET
        raise KeysError(f"{missing} is not set (set both {ENV_KEY} and {ENV_SECRET}, or pass --keys-file)")
    return ApiKeys(key, secret, "environment")


class RedactingFilter(logging.Filter):
    """Replaces the key and secret in a record's message (and its exception text) by <redacted>."""

    def __init__(self, secrets):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg, self.secrets)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, self.secrets)
            record.exc_info = None
        return True


def install_redaction(keys: ApiKeys | None, logger: logging.Logger | None = None) -> None:
    """Put a RedactingFilter on every handler of ``logger`` (default: the root logger)."""
    if keys is None:
        return
    logger = logger or logging.getLogger()
    flt = RedactingFilter((keys.api_key, keys.secret))
    for handler in logger.handlers:
        handler.addFilter(flt)
    logger.addFilter(flt)
