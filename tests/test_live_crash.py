"""The live process killed with SIGKILL in the middle of an order, then restarted: the reconciliation
resolves the order by its client id (never a duplicate, never a lost fill) and the ledger equals the
exchange again.

Two places to die (``TRADER_LIVE_TEST_HOOK``, see ``trader.live.broker``): right after the order was
stored as pending (it never reached the exchange: it is marked rejected, not resent), and right after
the exchange accepted it, before its answer was stored (it is found by client id with its fills)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")

from trader.live.audit import audit
from trader.live.ledger import Ledger
from trader.venue import LocalExchange
from conftest import PACKAGE_ROOT, kill_at_hook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "crash-test-key-77aa01", "crash-test-secret-c0ffee42"
KEYS = {KEY: {"secret": SECRET, "balances": {"USDT": "100000", "BTC": "1"}}}


def live_cmd(ex, db, *extra):
    return [sys.executable, "-m", "trader.live.cli", "live", "--real", "--base-url", ex.url, "--db", str(db),
            "--recv-window-ms", "1000", "-v", *extra]


def env(**extra):
    return {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "TRADER_API_KEY": KEY, "TRADER_API_SECRET": SECRET,
            **extra}


@pytest.mark.parametrize("point", ["after_pending", "after_send"])
def test_sigkill_mid_order_then_restart_reconciles(tmp_path, point):
    db = tmp_path / "live.sqlite"
    err_path = tmp_path / "stderr.txt"
    with LocalExchange(keys=KEYS, speed=20, loop=True) as ex:
        with open(err_path, "w") as err:
            proc = subprocess.Popen(live_cmd(ex, db, "--checkpoint", "scripted:buy", "--duration", "60"),
                                    env=env(TRADER_LIVE_TEST_HOOK=f"{point}:60"), stdout=subprocess.DEVNULL, stderr=err)
            marker = kill_at_hook(proc, err_path, point)
        assert proc.returncode == -signal.SIGKILL
        cid = marker

        st = Ledger(db)
        row = st.order(cid)
        assert row.status == "pending"  # what the killed process left
        on_exchange = [o for o in ex.orders(KEY) if o["clientOrderId"] == cid]
        if point == "after_pending":
            assert row.attempts == 0 and on_exchange == []
        else:
            assert row.attempts == 1 and len(on_exchange) == 1 and on_exchange[0]["status"] == "FILLED"
            assert st.fills(cid) == []
        st.close()

        again = subprocess.run(live_cmd(ex, db, "--checkpoint", "scripted:hold", "--duration", "1.5"), env=env(),
                               capture_output=True, text=True, timeout=60, check=False)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "reconciled: 1 order(s) resolved" in again.stdout

        st = Ledger(db)
        row = st.order(cid)
        on_exchange = [o for o in ex.orders(KEY) if o["clientOrderId"] == cid]
        if point == "after_pending":
            assert row.status == "rejected" and "never reached" in row.error and on_exchange == []
        else:
            assert row.status == "filled" and len(on_exchange) == 1
            assert st.filled_of(cid) == row.filled == row.amount
        report = audit(ex, KEY, st)  # one exchange order per client id; fills, states, balances equal
        assert report["orders"] == (0 if point == "after_pending" else 1)
        first, second = st.events("reconcile")  # at the first start, and after the kill
        assert first["detail"].startswith("0 order(s) resolved") and second["detail"].startswith("1 order(s) resolved")
