"""Trading environments over replayed order books (C++ pool), for gymnasium, PettingZoo and envpool."""

from trader.sim.env import Market, TradingEnv, TradingVectorEnv, load_market, make
from trader.sim.multi_agent import TradingParallelEnv

__all__ = ["Market", "TradingEnv", "TradingParallelEnv", "TradingVectorEnv", "load_market", "make"]
