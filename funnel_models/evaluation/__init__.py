"""Evaluation: rolling-origin backtests, baselines and forecast scores."""
