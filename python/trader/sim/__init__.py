"""Trading environments over replayed order books (C++ pool), for gymnasium, PettingZoo and envpool."""

from trader.sim.env import Market, TradingEnv, TradingVectorEnv, dataset_folders, load_market, load_markets, make
from trader.sim.multi_agent import TradingParallelEnv
from trader.sim.spec import decode_quote, encode_quote

__all__ = ["Market", "TradingEnv", "TradingParallelEnv", "TradingVectorEnv", "dataset_folders", "decode_quote",
           "encode_quote", "load_market", "load_markets", "make", "register_envpool"]


def register_envpool() -> bool:
    """Register "Trader-v0" into envpool's registry (so `envpool.make_gymnasium("Trader-v0", ...)`
    returns our env with envpool's send/recv API). False when envpool is not installed. Not done at
    import time: importing envpool takes seconds."""
    from trader.sim.envpool_compat import register_envpool as _register

    return _register()
