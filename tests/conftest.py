from __future__ import annotations

from pathlib import Path

import pytest

import trader

# Where the `trader` under test lives (the installed package, or python/ of a checkout with a built
# core): subprocesses get it first on PYTHONPATH so they run the same code.
PACKAGE_ROOT = Path(trader.__file__).resolve().parents[1]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BINANCE_RAW = SHARED_DATA / "binance_hftbacktest_raw_feed"
NEXO_RAW = SHARED_DATA / "binance_spot_nexousdt_raw_feed"


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (../shared/data beside the checkout)")
    return path
