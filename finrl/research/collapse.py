"""Collapse detector: an agent that learned nothing useful, dressed up as a strategy.

Three shapes, each flagged per fold and seed:

* ``always_long``: fully long (at least 90% of its largest position) on at least 95% of the test
  closes: buy-and-hold in disguise;
* ``always_flat``: no shares on at least 95% of them: it learned to stay out;
* ``constant_action``: the same action for at least 95% of diverse observations (every test day's
  features, seen both from a flat and from a long book): the action does not depend on what
  the agent observes.
"""

from __future__ import annotations

import numpy as np

from finrl.backtest.engine import AGENT, BacktestResult
from finrl.meta.env.spy_env import observed_portfolio

COLLAPSE_SHARE = 0.95
FULLY_LONG = 0.9  # of position_fraction: whole shares and costs keep a full position just below 1


def collapse_flags(result: BacktestResult) -> list[str]:
    """Flags for the agent of one backtest (one seed on one fold's test window)."""
    ledger = result.ledgers[AGENT].frame
    shares = ledger["shares"].to_numpy()[1:]  # the closes after the first decision
    weight = shares * result.market.close[1:] / ledger["nav"].to_numpy()[1:]
    flags = []
    if len(shares) and (weight >= FULLY_LONG * result.config.execution.position_fraction).mean() >= COLLAPSE_SHARE:
        flags.append("always_long")
    if len(shares) and (shares == 0).mean() >= COLLAPSE_SHARE:
        flags.append("always_flat")
    actions = result.policy.act_batch(probe_observations(result))
    _, counts = np.unique(np.round(np.asarray(actions, dtype=np.float64), 6), return_counts=True, axis=0)
    if counts.max() / counts.sum() >= COLLAPSE_SHARE:
        flags.append("constant_action")
    return flags


def probe_observations(result: BacktestResult) -> np.ndarray:
    """Every test day's features, with a flat book and with a fully long book at that day's close."""
    market, config = result.market, result.config
    nav = 100_000.0
    flat = observed_portfolio(config, 0.0, nav, nav, 1.0, float("nan"))
    long = observed_portfolio(config, 0.99 * nav, 0.01 * nav, nav, 1.0, 1.0)
    rows = []
    for book in (flat, long):
        state = np.tile(np.asarray(book, dtype=np.float32), (len(market), 1))
        rows.append(np.hstack([market.features.astype(np.float32), state]))
    return np.vstack(rows)
