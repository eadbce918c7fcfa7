from __future__ import annotations

import json
from pathlib import Path

import pytest

import trader

# Where the `trader` under test lives (the installed package, or python/ of a checkout with a built
# core): subprocesses get it first on PYTHONPATH so they run the same code.
PACKAGE_ROOT = Path(trader.__file__).resolve().parents[1]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BINANCE_RAW = SHARED_DATA / "binance_hftbacktest_raw_feed"
NEXO_RAW = SHARED_DATA / "binance_spot_nexousdt_raw_feed"


# PPO options of a quoting agent that quotes from its first update: PPO's own abstain_prior and quote_sides, not
# the quote recipe's (trader.rl.defaults.QUOTE_DEFAULTS), whose agents start flat and stay flat in the 128 to
# 1,024 steps a test trains; for tests of what happens to quotes (live orders, choices among seeds that differ)
QUOTES_FROM_THE_START = {"abstain_prior": 0.0, "quote_sides": "any"}


def quoting_config(folder: Path) -> str:
    """A --config file of QUOTES_FROM_THE_START in `folder`."""
    path = folder / "quotes_from_the_start.json"
    path.write_text(json.dumps(QUOTES_FROM_THE_START))
    return str(path)


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (../shared/data beside the checkout)")
    return path


@pytest.fixture(autouse=True)
def _dump_asyncio_tasks_before_the_timeout(request):
    """A minute before pytest-timeout fails a hung test, write every asyncio task's stack to stderr: the
    timeout's own traceback of a test blocked in an event loop shows only the loop's select()."""
    import asyncio
    import gc
    import sys
    import threading

    try:
        limit = request.config.getini("timeout")
    except ValueError:  # pytest-timeout not installed: no limit to dump before
        limit = None
    if not limit or float(limit) <= 120:
        yield
        return

    def dump():
        for loop in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]:
            for task in list(asyncio.all_tasks(loop)):
                print(f"asyncio task of {request.node.nodeid}: {task!r}", file=sys.stderr)
                task.print_stack(file=sys.stderr)

    timer = threading.Timer(float(limit) - 60, dump)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


@pytest.fixture
def restore_torch_globals():
    """The learners set torch's thread count and deterministic mode for the process, as scripts do;
    put them back for the tests that run after these (modules that train use it for every test)."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="session")
def usdm_data(tmp_path_factory):
    """The real USD-M BTCUSDT perpetual recording (2024-07-18 23:57 to 07-19 00:05 UTC, across the
    00:00 UTC funding time) converted into a dataset folder, for the local exchange's USD-M API."""
    from trader.data.binance import convert_files
    from trader.data.dataset import write_dataset

    paths = [shared("binance_hftbacktest_raw_feed", "usdm", f"btcusdt_{d}.gz") for d in ("20240718", "20240719")]
    (events, meta), = convert_files(paths)
    return write_dataset(tmp_path_factory.mktemp("usdm") / "btcusdt", events, meta)


def kill_at_hook(proc, err_path, point: str, timeout: float = 60.0) -> str:
    """Wait until the `trader live` subprocess `proc` (stderr to err_path, TRADER_LIVE_TEST_HOOK set)
    prints its ``TEST-HOOK point <marker>`` line, SIGKILL it there and return the marker."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    marker = None
    while marker is None:
        assert proc.poll() is None, err_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "the hook was never reached"
        for line in err_path.read_text().splitlines():
            if line.startswith(f"TEST-HOOK {point} "):
                marker = line.split()[-1]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return marker
