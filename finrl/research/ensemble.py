"""The seeds' ensemble on a test window: hold the mean of the seeds' target weights.

Each seed's policy trades the window on its own (its observations see its own book, as in
training); on every decision day the ensemble targets the mean of the weights the seeds decided
(discrete3: the position each decided, -1, 0 or 1, so 3 of 5 seeds long is 60% long; weight
spaces: the decided target weight) and trades towards it through the same execution rule and
costs, as a continuous target-weight replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from finrl.backtest.engine import AGENT, BacktestResult
from finrl.meta.env.rollout import run_policy


def decided_weights(result: BacktestResult) -> np.ndarray:
    """The target weight the agent decided after each day's close (every day but the last).

    The replay scales a weight by ``position_fraction``, as the seed's own trading did.
    """
    ledger = result.ledgers[AGENT].frame
    if result.config.action_space == "discrete3":
        return np.asarray(ledger["position"].to_numpy()[1:], dtype=np.float64)  # row t+1: decided after t
    return np.asarray(ledger["action"].to_numpy()[:-1], dtype=np.float64)  # the decided weight, on row t


def mean_target_weights(results: Sequence[BacktestResult]) -> np.ndarray:
    """Per decision day: the mean of the seeds' decided target weights."""
    return np.asarray(np.column_stack([decided_weights(r) for r in results]).mean(axis=1))


def ensemble_ledger(results: Sequence[BacktestResult]) -> pd.DataFrame:
    """The ensemble's day-by-day ledger on the window all ``results`` were tested on."""
    first = results[0]
    weights = iter(mean_target_weights(results))

    def target_weight(_: np.ndarray) -> float:
        return float(next(weights))

    return run_policy(first.market, replace(first.config, action_space="continuous"), target_weight).frame
