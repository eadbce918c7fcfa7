"""API keys and Binance's request signatures (HMAC-SHA256 of the parameters, ``X-MBX-APIKEY``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path

from trader.venue import errors
from trader.venue.amounts import integer

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000


def load_keys(path: str | Path) -> dict:
    """Read a keys file: ``{"<api key>": {"secret": "...", "balances": {"USDT": "100000", "BTC": "1"}}}``.

    Returns the dict as read, checked for shape. The file should be readable by its owner only; keep
    it outside the repository.
    """
    path = Path(path)
    try:
        keys = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(keys, dict) or not keys:
        raise ValueError(f"{path}: expected an object {{api_key: {{secret, balances}}}} with at least one key")
    for key, entry in keys.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("secret"), str) or not entry["secret"]:
            raise ValueError(f"{path}: key {key[:6]}...: needs a non-empty string 'secret'")
        balances = entry.get("balances", {})
        if not isinstance(balances, dict):
            raise ValueError(f"{path}: key {key[:6]}...: 'balances' must be an object asset -> amount")
    return keys


def insecure_mode(path: str | Path) -> bool:
    """True if group or others may read the file."""
    return bool(os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` without its ``signature=`` parameter (order kept), and the signature."""
    if not raw:
        return "", None
    parts = raw.split("&")
    kept, sig = [], None
    for part in parts:
        if part.startswith("signature="):
            sig = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), sig


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def api_key_only(accounts: dict, api_key: str | None):
    """The account of a request that carries only its API key (the listenKey endpoints: no signature)."""
    if not api_key:
        raise errors.api_key_format()
    acct = accounts.get(api_key)
    if acct is None:
        raise errors.invalid_api_key()
    return acct


def verify(accounts: dict, api_key: str | None, query: str, body: str, params: dict, now_ms: int | None = None):
    """The account of a correctly signed request, or the Binance error a bad one gets.

    Binance signs ``totalParams`` = query string concatenated with the request body (no separator),
    without the ``signature`` parameter itself.
    """
    if not api_key:
        raise errors.api_key_format()
    acct = accounts.get(api_key)
    if acct is None:
        raise errors.invalid_api_key()
    q, sig_q = _strip_signature(query)
    b, sig_b = _strip_signature(body)
    sig = sig_q or sig_b
    if not sig:
        raise errors.mandatory("signature")
    expected = sign(acct.secret, q + b)
    if not hmac.compare_digest(expected, sig.lower()):
        raise errors.bad_signature()
    if not params.get("timestamp"):
        raise errors.mandatory("timestamp")
    ts = integer(params, "timestamp")
    window = integer(params, "recvWindow", DEFAULT_RECV_WINDOW_MS)
    if window > MAX_RECV_WINDOW_MS or window <= 0:
        raise errors.bad_recv_window()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts >= now + 1000:
        raise errors.timestamp_ahead()
    if now - ts > window:
        raise errors.bad_timestamp()
    return acct
