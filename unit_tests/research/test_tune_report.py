"""The tune report's Deflated Sharpe Ratio deflates by the configurations the study really tried:
pruned and failed ones count, a configuration drawn twice or a dead worker's trial retried counts
once, and a trial that evaluated nothing (refused as surplus, or settings that do not combine) not at all."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

from finrl.research.tune.report import _dsr, summarize
from finrl.research.tune.trials import (
    FAIL_REASON_ATTR,
    FOLD_SCORES_ATTR,
    MOMENTS_ATTR,
    SEED_SHARPES_ATTR,
    ReturnMoments,
)

pytestmark = pytest.mark.unit

SPACE = {
    "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True),
    "reward": optuna.distributions.CategoricalDistribution(["log_return", "differential_sharpe"]),
}
BEST_MOMENTS = ReturnMoments(189, 0.08, -0.3, 4.5)


def trial(
    state: str, lr: float | None, sharpes: list[float], folds: int, value: float | None = None, **attrs: Any
) -> optuna.trial.FrozenTrial:
    """A trial as a worker leaves it: two seeds' daily validation Sharpe ratios after ``folds`` folds."""
    params = {} if lr is None else {"learning_rate": lr, "reward": "log_return"}
    user_attrs = {FOLD_SCORES_ATTR: [0.5] * folds, **attrs}
    if sharpes:
        user_attrs[SEED_SHARPES_ATTR] = sharpes
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState[state],
        value=value,
        params=params,
        distributions={k: SPACE[k] for k in params},
        user_attrs=user_attrs,
        intermediate_values={step: 0.5 for step in range(folds)},
    )


def test_the_dsr_counts_each_configuration_tried_once() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(trial("COMPLETE", 1e-4, [0.10, 0.12], 3, value=1.5, **{MOMENTS_ATTR: BEST_MOMENTS.to_json()}))
    study.add_trial(trial("PRUNED", 2e-4, [-0.05, 0.01], 1))  # stopped early: still looked at
    study.add_trial(trial("FAIL", 3e-4, [0.02, 0.00], 1))  # its worker died after a fold ...
    retried = trial("COMPLETE", 3e-4, [0.04, 0.03], 3, value=0.4)  # ... and it ran again with its attributes
    retried.system_attrs["failed_trial"] = 2
    study.add_trial(retried)
    study.add_trial(trial("COMPLETE", 1e-4, [0.10, 0.12], 3, value=1.5))  # the sampler drew the best again
    study.add_trial(trial("FAIL", None, [], 0, **{FAIL_REASON_ATTR: "the study had its 5 trials: not run"}))
    study.add_trial(trial("FAIL", 5e-4, [], 0, **{FAIL_REASON_ATTR: "batch_size exceeds one rollout"}))

    summary = summarize(study)
    counted = [0.10, 0.12, -0.05, 0.01, 0.04, 0.03]  # three configurations x two seeds; the retry's full run
    assert summary.n_trials == len(counted)
    assert summary.sharpe_variance == pytest.approx(np.var(counted, ddof=1))
    assert summary.best_number == 0
    assert summary.dsr == pytest.approx(_dsr(BEST_MOMENTS, len(counted), float(np.var(counted, ddof=1))))
    assert summary.states == {"COMPLETE": 3, "FAIL": 3, "PRUNED": 1}
