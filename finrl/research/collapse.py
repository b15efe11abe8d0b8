"""Collapse detector: an agent that learned nothing useful, dressed up as a strategy.

Three shapes, each flagged per fold and seed:

* ``always_long``: long on at least 95% of the test closes (buy-and-hold in disguise);
* ``always_flat``: flat on at least 95% of them (it learned to stay out);
* ``constant_action``: the same action for at least 95% of diverse observations (every test day's
  features, seen both from a flat and from a long book): the action does not depend on what
  the agent observes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finrl.agents.numpy_policy import NumpyPolicy
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import portfolio_features

COLLAPSE_SHARE = 0.95


def collapse_flags(ledger: pd.DataFrame, policy: NumpyPolicy, market: MarketArrays) -> list[str]:
    """Flags for one seed's test ledger (see :class:`finrl.meta.env.rollout.EpisodeLedger`)."""
    held = ledger["position"].to_numpy()[1:]  # the closes after the first decision
    flags = []
    if len(held) and (held > 0).mean() >= COLLAPSE_SHARE:
        flags.append("always_long")
    if len(held) and (held == 0).mean() >= COLLAPSE_SHARE:
        flags.append("always_flat")
    actions = policy.act_batch(probe_observations(market))
    _, counts = np.unique(np.round(np.asarray(actions, dtype=np.float64), 6), return_counts=True, axis=0)
    if counts.max() / counts.sum() >= COLLAPSE_SHARE:
        flags.append("constant_action")
    return flags


def probe_observations(market: MarketArrays) -> np.ndarray:
    """Every day's features with a flat book and with a long book at that day's close."""
    nav = 100_000.0
    flat = portfolio_features(0, nav, nav, 1.0, float("nan"))
    long = portfolio_features(1, 0.01 * nav, nav, 1.0, 1.0)
    rows = []
    for book in (flat, long):
        state = np.tile(np.asarray(book, dtype=np.float32), (len(market), 1))
        rows.append(np.hstack([market.features.astype(np.float32), state]))
    return np.vstack(rows)
