"""The seeds' ensemble on a test window: hold the mean of the seeds' target weights.

Each seed's policy trades the window on its own (its observations see its own book, as in
training); on every decision day the ensemble targets the mean of the weights the seeds decided
(discrete3: the position each decided, -1, 0 or 1, so 3 of 5 seeds long is 60% long; weight
spaces: the decided target weight) and trades towards it through the same execution rule and
costs, as a continuous target-weight replay. It is the ``mean_weight`` rule of
:mod:`finrl.agents.ensemble`, the one definition an ensemble bundle's backtest and paper trading use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from finrl.agents.ensemble import combine_targets, decided_weights, trade_targets
from finrl.backtest.engine import AGENT, BacktestResult


def mean_target_weights(results: Sequence[BacktestResult]) -> np.ndarray:
    """Per decision day (every day of the window but the last): the mean of the seeds' decided target weights."""
    weights = [decided_weights(r.ledgers[AGENT].frame, r.config.action_space, len(r.market) - 1) for r in results]
    return combine_targets(np.column_stack(weights), "mean_weight")


def ensemble_ledger(results: Sequence[BacktestResult]) -> pd.DataFrame:
    """The ensemble's day-by-day ledger on the window all ``results`` were tested on."""
    first = results[0]
    return trade_targets(first.market, first.config, mean_target_weights(results)).frame
