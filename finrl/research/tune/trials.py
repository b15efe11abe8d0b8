"""What a trial keeps in the study, and how the study's trials are counted.

Read by the workers that write these attributes and by ``spy-rl tune report``, which only reads
them: this module imports neither torch nor the training code, so that a report (or a dashboard
host) needs only Optuna.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from finrl.research import statistics

if TYPE_CHECKING:
    import optuna

# user attributes of a trial
WORKER_ATTR = "worker"
FOLD_SCORES_ATTR = "fold_scores"  # per fold: the mean validation Sharpe (annualised) of the seeds
SEED_SHARPES_ATTR = "seed_daily_sharpes"  # per seed: daily Sharpe of its validation days so far
MOMENTS_ATTR = "validation_moments"  # finished trials: of the daily returns of the seeds in equal shares
FAIL_REASON_ATTR = "fail_reason"


@dataclass(frozen=True)
class ReturnMoments:
    """What the PSR and DSR read from a return series: its length, per-period Sharpe ratio, skewness and
    (non-excess) kurtosis, as :mod:`finrl.research.statistics` computes them."""

    days: int
    daily_sharpe: float
    skew: float
    kurtosis: float

    @classmethod
    def of(cls, returns: np.ndarray) -> ReturnMoments:
        from scipy import stats

        if returns.size < 2 or np.ptp(returns) == 0.0:  # flat: counted as normal, as the statistics module does
            return cls(int(returns.size), 0.0, 0.0, 3.0)
        skew, kurtosis = float(stats.skew(returns)), float(stats.kurtosis(returns, fisher=False))
        return cls(int(returns.size), statistics.sharpe_ratio(returns), skew, kurtosis)

    def to_json(self) -> dict[str, float]:
        return {"days": self.days, "daily_sharpe": self.daily_sharpe, "skew": self.skew, "kurtosis": self.kurtosis}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ReturnMoments:
        return cls(int(document["days"]), *(float(document[k]) for k in ("daily_sharpe", "skew", "kurtosis")))


def state_counts(study: optuna.Study) -> Counter[str]:
    """The study's trials by state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def evaluated_configurations(trials: Iterable[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """One trial per distinct configuration that was evaluated on at least one fold: what the DSR counts.

    A configuration drawn twice (the sampler repeats itself, or a dead worker's trial was retried with
    its parameters and attributes copied) is one trial tried, not two; of its copies the one that got
    furthest (most folds) speaks for it. A trial that evaluated nothing (refused, or its settings did
    not combine) was not tried. Every other trial counts, whatever its state: a pruned or failed
    configuration was looked at before the best one was chosen.
    """
    kept: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in trials:
        if not trial.user_attrs.get(SEED_SHARPES_ATTR):
            continue
        key = json.dumps(trial.params, sort_keys=True, default=str)
        if key not in kept or _folds(trial) > _folds(kept[key]):
            kept[key] = trial
    return list(kept.values())


def _folds(trial: optuna.trial.FrozenTrial) -> int:
    return len(trial.user_attrs.get(FOLD_SCORES_ATTR, []))
