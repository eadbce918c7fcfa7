"""A quote agent -- a tiny PPO trained with ``--actions quote`` here, once for the module -- run by the real
``trader live`` entry point (``python -m trader.live.cli live --real``, keys from the environment) against
the local exchange, spot (ccxt ``binance``) and USD-M futures (ccxt ``binanceusdm``, ``--market usdm``),
under every fault: 429 with Retry-After, 5xx, dropped answers, websocket drops, diff sequence gaps,
user-data stream drops, and a SIGKILL in the middle of a replace (the old quote cancelled, the new one
accepted by the exchange, its answer not stored) followed by a restart that reconciles it.

Every case: the kernel's quotes go out as post-only orders (spot LIMIT_MAKER, USD-M LIMIT GTX), kept at an
unchanged price, else cancelled and sent anew; fills come over the user-data stream with the REST backfill;
everything is cancelled at the stop; then the audit (``trader.live.audit``): each client id once on the
exchange (no duplicate), every exchange order and trade in the ledger with the same state (nothing lost),
balances (spot) or position and wallet (USD-M) equal to the exchange's. And the same agent paper on USD-M:
the kernel's quotes in the ledger, nothing sent.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
pytest.importorskip("torch")

from conftest import PACKAGE_ROOT, QUOTES_FROM_THE_START, kill_at_hook  # noqa: E402
from rich.console import Console  # noqa: E402
from trader.live.audit import audit  # noqa: E402
from trader.live.keys import ApiKeys  # noqa: E402
from trader.live.launch import EXIT_OK, LiveOptions, run_live  # noqa: E402
from trader.live.ledger import Ledger  # noqa: E402
from trader.venue import Faults, LocalExchange  # noqa: E402

KEY, SECRET = "quote-agent-key-1a2b3c", "quote-agent-secret-4d5e6f70"
BALANCES = {"spot": {"USDT": "100000", "BTC": "1"}, "usdm": {"USDT": "10000"}}
SYMBOLS = {"spot": "BTC/USDT", "usdm": "BTC/USDT:USDT"}
SPEED = {"spot": 20.0, "usdm": 5.0}
FUNDING_MS = 1721347200000  # 2024-07-19 00:00:00 UTC, inside the USD-M recording
QUOTE_TYPES = {"spot": {("LIMIT_MAKER", "GTC")}, "usdm": {("LIMIT", "GTX")}}  # post-only on each API

# The fault tests' settings (tests/test_live_faults.py, tests/test_live_usdm.py): USD-M diffs are denser
# (depth@0ms) and a futures snapshot waits ~1 s in ccxt's throttle, so gaps come less often there.
FAULTS = {
    "none": {},
    "429": {"rate_limit": 6, "rate_window_s": 1.0},
    "5xx": {"error_rate": 0.2},
    "drop-after-accept": {"drop_after_accept": 0.5, "seed": 1},  # its first draw, 0.13, drops the first order's answer
    "ws-disconnect": {"ws_disconnect_every": 2.0},
    "sequence-gap": {"spot": {"sequence_gap_every": 80}, "usdm": {"sequence_gap_every": 300}},
    "user-data-drop": {},  # ex.drop_user_streams() every second
    "sigkill-mid-replace": {},  # TRADER_LIVE_TEST_HOOK=after_send:60:5, then a restart
}
TRIGGERED = {"429": "rate_limited", "5xx": "errors", "drop-after-accept": "dropped", "ws-disconnect": "ws_disconnects",
             "sequence-gap": "sequence_gaps"}
# seconds of session: an order whose answer a 5xx lost is resent only after recvWindow + 1 s
DURATION = {"5xx": 6.0, "ws-disconnect": 5.0, "sequence-gap": 5.0, "drop-after-accept": 5.0}


@pytest.fixture(scope="module")
def quote_agent(tmp_path_factory):
    """The run folder of a PPO agent trained with --actions quote on the bundled sample (128 steps)."""
    import torch

    from trader.rl import ppo
    from trader.run.lifecycle import resolve_args

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        args = resolve_args(ppo.Args, None, {"total_timesteps": 128, "num_envs": 2, "num_steps": 64,
                                             "runs_dir": str(tmp_path_factory.mktemp("quote_agent")), "track": False,
                                             "progress_bar": False, "cuda": False, "actions": "quote",
                                             "quote_levels": 3, "max_position": 0.03, **QUOTES_FROM_THE_START})
        return ppo.train(args)["run_dir"]
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def start(ex, market: str) -> None:
    """Start the replay: spot at 20x; USD-M (a faster market: at 20x the book moves past a quote before it
    arrives, and the exchange refuses it as crossing) at 5x from 20 s of data before the 00:00 UTC funding,
    about 4 s into the run, before the session stops: a position held then pays it, and the audit wants
    that payment in the ledger too."""
    if market == "usdm":
        ex.advance((FUNDING_MS - ex.exchange_ms()) / 1000 - 20)
    ex.resume(speed=SPEED[market])


def live_cmd(ex, market: str, db, agent) -> list[str]:
    """`trader live --real` as an operator types it (keys from the environment: run_env)."""
    return [sys.executable, "-m", "trader.live.cli", "live", "--real", "--market", market, "--leverage", "5",
            "--base-url", ex.url, "--db", str(db), "--checkpoint", str(agent), "--recv-window-ms", "1000",
            "--duration", "60", "-v"]


def run_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "TRADER_API_KEY": KEY, "TRADER_API_SECRET": SECRET,
            **extra}


def run_session(ex, market: str, db, agent, duration: float, *, real: bool = True, drop_user_data: bool = False):
    """`trader live` (run_live, in this process: the command's own call) to its end, dropping the
    user-data streams every second if asked; (result, console text, streams dropped)."""
    opts = LiveOptions(symbol="BTC/USDT", market=market, leverage=5, checkpoint=str(agent), real=real,
                       keys=ApiKeys(KEY, SECRET) if real else None, base_url=ex.url, db=str(db), duration=duration,
                       recv_window_ms=1000)
    stop, drops = threading.Event(), []

    def dropper():
        while not stop.wait(1.0):
            drops.append(ex.drop_user_streams())

    if drop_user_data:
        threading.Thread(target=dropper, daemon=True).start()
    text = io.StringIO()
    try:
        code, res, msg = run_live(opts, Console(file=text))
    finally:
        stop.set()
    assert code == EXIT_OK, msg
    return res, text.getvalue(), sum(drops)


def _killed_mid_replace(ex, market: str, db, err_path, agent) -> str | None:
    """Runs the command until its fifth order is accepted, SIGKILLs it there and checks the ledger: that
    order's client id when it replaced a quote (the old one of its side cancelled first), None when it did
    not: the first quote of its side, or one after a quote refused as crossing (post-only) or filled."""
    with open(err_path, "w") as err:
        proc = subprocess.Popen(live_cmd(ex, market, db, agent), stdout=subprocess.DEVNULL, stderr=err,
                                env=run_env(TRADER_LIVE_TEST_HOOK="after_send:60:5"))
        marker = kill_at_hook(proc, err_path, "after_send")
    assert proc.returncode == -signal.SIGKILL
    st = Ledger(db)
    row = st.order(marker)
    before = [o for o in st.orders() if o.side == row.side and o.seq < row.seq]
    st.close()
    assert row.status == "pending" and row.params == {"postOnly": True}
    if not before or before[-1].status in ("rejected", "filled"):
        return None
    assert before[-1].status == "cancelled"
    assert [o["clientOrderId"] for o in ex.orders(KEY)].count(marker) == 1  # the exchange has the new one
    return marker


@pytest.mark.parametrize("name", list(FAULTS))
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_quote_agent_through_trader_live_under_fault(quote_agent, tmp_path, market, name, request):
    data = request.getfixturevalue("usdm_data") if market == "usdm" else None
    faults = FAULTS[name].get(market, FAULTS[name]) if name == "sequence-gap" else FAULTS[name]
    keys = {KEY: {"secret": SECRET, "balances": BALANCES[market]}}
    # SIGKILL: the command itself, killed at its fifth order, then a restart. Which order that is depends
    # on the agent and the market: when it is no replace, the attempt is not the case under test and runs
    # again on a fresh exchange and ledger.
    for attempt in range(4 if name == "sigkill-mid-replace" else 1):
        db, err_path = tmp_path / f"live{attempt}.sqlite", tmp_path / f"stderr{attempt}.txt"
        ex = LocalExchange(data, keys=keys, speed=0, loop=True, faults=Faults(**{"seed": 5, **faults})).start()
        try:
            start(ex, market)
            if name != "sigkill-mid-replace":
                break
            marker = _killed_mid_replace(ex, market, db, err_path, quote_agent)
            if marker:
                break
        except BaseException:
            ex.stop()
            raise
        ex.stop()
    else:
        pytest.fail("no attempt killed the command in the middle of a replace")
    try:
        res, text, drops = run_session(ex, market, db, quote_agent, DURATION.get(name, 3.0),
                                       drop_user_data=name == "user-data-drop")
        stats = ex.stats
        st = Ledger(db)
        report = audit(ex, KEY, st, SYMBOLS[market])  # no duplicate, nothing lost, balances / position equal
        orders = ex.orders(KEY)
        assert ex.call(lambda: len(ex.engine.open)) == 0  # cancel-all on stop: nothing left resting
    finally:
        ex.stop()
    if name == "sigkill-mid-replace":  # the restart resolved it by client id: never sent twice, never lost
        resolved = re.search(r"reconciled: (\d+) order\(s\) resolved", text)  # with it, any filled meanwhile
        assert resolved and int(resolved.group(1)) >= 1, text
        assert st.order(marker).status in ("cancelled", "filled")
    if name in TRIGGERED:
        assert getattr(stats, TRIGGERED[name]) >= 1, stats
    if name == "user-data-drop":
        assert drops >= 2
    quotes = [o for o in orders if o["clientOrderId"] in {r.client_id for r in st.orders() if r.params.get("postOnly")}]
    assert quotes and len(quotes) == len(orders) - sum(o["type"] == "MARKET" for o in orders)
    assert {(o["type"], o["timeInForce"]) for o in quotes} == QUOTE_TYPES[market]
    assert report["orders"] == report["ledger_orders"] - report["rejected"]
    if name == "none":  # quotes kept at an unchanged price: fewer orders than two sides times the steps
        assert res.steps > 10 and 0 < res.orders < 2 * res.steps


def test_quote_agent_paper_on_usdm(quote_agent, usdm_data, tmp_path):
    """``trader live --paper --market usdm``: the kernel's quotes and fills in the ledger, nothing sent."""
    db = tmp_path / "paper.sqlite"
    with LocalExchange(usdm_data, keys={KEY: {"secret": SECRET, "balances": BALANCES["usdm"]}}, speed=0,
                       loop=True) as ex:
        start(ex, "usdm")
        res, _, _ = run_session(ex, "usdm", db, quote_agent, 3.0, real=False)
        assert ex.orders(KEY) == []
    st = Ledger(db)
    quotes = [o for o in st.orders() if o.type == "limit"]
    assert res.steps > 10 and len(quotes) == res.orders > 0 and all(o.params == {"postOnly": True} for o in quotes)
    assert {o.symbol for o in st.orders()} == {SYMBOLS["usdm"]}
    assert not [o for o in st.orders() if o.status in ("open", "pending", "unknown")]  # cancelled at the stop
