"""The seeds' ensemble on a test window: hold the mean of the seeds' target weights.

Each seed's policy trades the window on its own (its observations see its own book, as in
training); on every decision day the ensemble targets the mean of the positions the seeds
decided, as a fraction of equity (3 of 5 seeds long: 60% long), and trades towards it through
the same execution rule and costs, as a continuous target-weight replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from finrl.backtest.engine import AGENT, BacktestResult
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy


def mean_target_weights(results: Sequence[BacktestResult]) -> np.ndarray:
    """Per decision day t (every day but the last): the mean of the positions the seeds decided at t.

    Positions are -1, 0 or 1; the replay scales a weight by ``position_fraction`` as each seed did.
    """
    held = np.column_stack([r.ledgers[AGENT].frame["position"].to_numpy() for r in results])
    return np.asarray(held[1:].mean(axis=1))  # row t+1 holds what was decided after day t's close


def ensemble_ledger(market: MarketArrays, results: Sequence[BacktestResult]) -> pd.DataFrame:
    """The ensemble's day-by-day ledger over ``market`` (the window all ``results`` were tested on)."""
    config = replace(results[0].bundle.env_config, action_space="continuous")
    weights = iter(mean_target_weights(results))

    def target_weight(_: np.ndarray) -> float:
        return float(next(weights))

    return run_policy(market, config, target_weight).frame
