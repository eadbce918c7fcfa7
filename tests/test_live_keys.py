"""API keys: from the environment or a file outside any git work tree; never shown, never logged."""

from __future__ import annotations

import io
import json
import logging

import pytest
from trader.live.keys import ApiKeys, KeysError, RedactingFilter, load_keys

SECRET = "s3cr3t-value-0123456789abcdef"
KEY = "AKEY-0123456789abcdef"


def test_from_environment_and_redacting_repr():
    k = load_keys(env={"TRADER_API_KEY": KEY, "TRADER_API_SECRET": SECRET})
    assert (k.api_key, k.secret) == (KEY, SECRET)
    for text in (repr(k), str(k), f"{k}", repr([k])):
        assert SECRET not in text and KEY not in text
    assert load_keys(env={}) is None
    with pytest.raises(KeysError, match="TRADER_API_SECRET is not set"):
        load_keys(env={"TRADER_API_KEY": KEY})


def test_keys_file_outside_repo(tmp_path):
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"apiKey": KEY, "secret": SECRET}))
    f.chmod(0o644)
    warnings = []
    k = load_keys(f, warn=warnings.append, env={})
    assert k.secret == SECRET and "chmod 600" in warnings[0]
    f.write_text("{not json " + SECRET)
    with pytest.raises(KeysError) as info:
        load_keys(f, env={})
    assert SECRET not in str(info.value)


def test_keys_file_inside_a_git_work_tree_is_refused(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    f = repo / "conf" / "keys.json"
    f.parent.mkdir()
    f.write_text(json.dumps({"apiKey": KEY, "secret": SECRET}))
    with pytest.raises(KeysError, match="inside the git work tree"):
        load_keys(f, env={})


def test_log_records_are_redacted():
    k = ApiKeys(KEY, SECRET)
    buf = io.StringIO()
    logger = logging.getLogger("test_live_keys")
    handler = logging.StreamHandler(buf)
    handler.addFilter(RedactingFilter((k.api_key, k.secret)))
    logger.addHandler(handler)
    try:
        logger.warning("request signed with %s and %s", KEY, SECRET)
        try:
            raise RuntimeError(f"bad secret {SECRET}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = buf.getvalue()
    assert "request signed with" in out and "RuntimeError" in out
    assert SECRET not in out and KEY not in out
    assert k.redact(f"x {SECRET} y") == "x <redacted> y"
