"""Honest backtests: held-out periods, the env execution model, baselines, reports."""
