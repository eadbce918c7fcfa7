"""`trader evaluate`: walk-forward evaluation of trained agents on data they never saw.

folds (the train / test periods), stats (bootstrap confidence intervals), run (train each fold's
agents through `trader train`'s entry and backtest them through trader.backtest.engine), evaluation
(plan and run one evaluation), report (evaluation.md, evaluation.json, plots) and cli (the command).
"""
