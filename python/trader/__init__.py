"""trader: reinforcement-learning trading on crypto limit order books.

The C++ core (``trader._core``) holds the event record, the exact L2 book, the replay and the env pool;
this package adds market data (data), the trading envs (sim), order-book encoders (nn), the learners
(rl), what every training run needs (run), backtests (backtest), live trading (live), the checkpoint
store (store) and the ``trader`` command (cli).
"""

__version__ = "0.1.0"
