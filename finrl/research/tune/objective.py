"""One trial: a configuration's walk-forward validation score, fold by fold.

For each fold, every seed trains on the training window and keeps its best checkpoint by the
validation window's Sharpe ratio (the walk-forward's own rule, through
:class:`~finrl.research.walkforward.WalkForward` and its cache: a configuration tried before is
not trained again). The fold's score is the mean of the seeds' validation Sharpe ratios; the
trial's running score, the mean over the folds so far, is reported after each fold, so that the
pruner can stop a configuration that trails the median early. Test windows are never read.

Each trial keeps, as user attributes, what the report's Deflated Sharpe Ratio needs: the seeds'
daily validation Sharpe ratios (every configuration x seed tried counts, pruned ones too) and,
for a finished trial, the moments of the daily validation returns of its seeds' policies in equal
shares. Moments, not the returns: every worker's sampler reads every trial of the study before
each new one, so trials stay small.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from finrl.errors import FinRLError
from finrl.log import get_logger
from finrl.meta.dataset import FeatureData
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy
from finrl.research import statistics
from finrl.research.folds import Fold
from finrl.research.tune.space import SearchSpace
from finrl.research.tune.stop import StopRequest, TuneInterruptedError
from finrl.research.tune.trials import (
    FAIL_REASON_ATTR,
    FOLD_SCORES_ATTR,
    MOMENTS_ATTR,
    SEED_SHARPES_ATTR,
    WORKER_ATTR,
    ReturnMoments,
)
from finrl.research.walkforward import WalkForward, WalkForwardConfig

if TYPE_CHECKING:
    import optuna

    from finrl.agents.bundle import ModelBundle

log = get_logger(__name__)


class SurplusTrialError(Exception):
    """The study had its number of trials when this one started (another worker started at the same time)."""


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of one worker shares."""

    data: FeatureData
    space: SearchSpace
    config_for: Callable[[dict[str, Any]], WalkForwardConfig]  # drawn params -> the walk-forward to score
    n_trials: int  # the study's budget of finished trials
    worker: str  # who ran a trial: the Indexed Job's completion index, else host and pid
    stop: StopRequest


def objective(setup: TrialSetup) -> Callable[[optuna.Trial], float]:
    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, setup.worker)
        try:
            _claim(trial, setup.n_trials)
            return _score(trial, setup)
        except (FinRLError, SurplusTrialError) as exc:
            trial.set_user_attr(FAIL_REASON_ATTR, str(exc))
            raise

    return run


def _claim(trial: optuna.Trial, n_trials: int) -> None:
    """Refuse to be trial n_trials + 1: trial numbers are handed out in order by the storage, so
    of several workers that started together only the ones within the budget go on."""
    import optuna

    live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING,
            optuna.trial.TrialState.WAITING)  # fmt: skip
    earlier = sum(1 for t in trial.study.get_trials(deepcopy=False, states=live) if t.number < trial.number)
    if earlier >= n_trials:
        raise SurplusTrialError(f"the study had its {n_trials} trials when trial {trial.number} started: not run")


def _score(trial: optuna.Trial, setup: TrialSetup) -> float:
    import optuna

    params = setup.space.suggest(trial)
    walk = WalkForward.plan(setup.config_for(params), setup.data)
    seeds = walk.config.seeds
    fold_scores: list[float] = []
    returns: dict[int, list[pd.Series]] = {seed: [] for seed in seeds}
    for step, fold in enumerate(walk.folds):
        trained = _train(walk, fold, f"trial {trial.number} stopped in fold {fold.number}", setup.stop)
        bundles = walk.bundles(fold)
        fold_scores.append(float(np.mean([_validation_sharpe(bundles[seed]) for seed in seeds])))
        for seed in seeds:
            returns[seed].append(validation_returns(bundles[seed], setup.data.features, fold))
        score = float(np.mean(fold_scores))
        trial.set_user_attr(FOLD_SCORES_ATTR, fold_scores)
        trial.set_user_attr(SEED_SHARPES_ATTR, [statistics.sharpe_ratio(pd.concat(returns[s])) for s in seeds])
        trial.report(score, step)
        log.info("tune_fold", trial=trial.number, worker=setup.worker, fold=fold.number, trained=trained,
                 fold_score=round(fold_scores[-1], 4), score=round(score, 4))  # fmt: skip
        setup.stop.check(f"trial {trial.number} stopped after fold {fold.number}")
        if trial.should_prune():
            raise optuna.TrialPruned(f"score {score:.4f} after fold {fold.number} is below the median")
    equal_shares = pd.concat([pd.concat(parts) for parts in returns.values()], axis=1).mean(axis=1)
    trial.set_user_attr(MOMENTS_ATTR, ReturnMoments.of(equal_shares.to_numpy()).to_json())
    return float(np.mean(fold_scores))


def _train(walk: WalkForward, fold: Fold, doing: str, stop: StopRequest) -> int:
    """Train the fold's seeds that are not cached; a stop request ends the trial at once, not after the fold.

    A signal during PPO's learning loop is caught by the training itself (it ends after its current
    step): it becomes this worker's stop request too, so that a second signal ends the worker at once.
    """
    from finrl.agents.training import TrainingInterruptedError

    try:
        with stop.raising(doing):
            return walk.train(fold)
    except TrainingInterruptedError as exc:
        signum = exc.exit_code - 128  # the training's exit code is 128 + the signal's number
        stop.set(signum)
        raise TuneInterruptedError(f"{doing}: stopped by {signal.Signals(signum).name}", signum) from None


def _validation_sharpe(bundle: ModelBundle) -> float:
    """The annualised validation Sharpe the seed's model was kept by (recorded at training)."""
    value = bundle.manifest.training.get("best_validation_sharpe")
    if value is None or not math.isfinite(float(value)):
        return 0.0  # no measurable skill, as the performance module scores an undefined Sharpe
    return float(value)


def validation_returns(bundle: ModelBundle, features: pd.DataFrame, fold: Fold) -> pd.Series:
    """Daily returns of the kept model over the fold's validation window, replayed as its training
    validated it (from flat, deterministic policy); the first day's return is 0 as in the walk-forward."""
    frame = fold.validation.slice(features, what="validation window")
    ledger = run_policy(
        MarketArrays.from_features(frame, bundle.normalizer), bundle.env_config, bundle.load_policy().act
    )
    return ledger.nav.pct_change().fillna(0.0)
