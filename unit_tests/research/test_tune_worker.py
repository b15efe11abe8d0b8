"""The worker loop of ``spy-rl tune run`` around its trials: trials refused as surplus (another worker
took the last places) are not mistaken for a search space whose settings do not combine, which is
what ends a worker early."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
import pytest

from finrl.errors import ConfigError
from finrl.research.tune import objective, worker
from finrl.research.tune.objective import SurplusTrialError, TrialSetup
from finrl.research.tune.space import load_search_space
from finrl.research.tune.stop import StopRequest
from finrl.research.tune.worker import run_worker

pytestmark = pytest.mark.unit

SURPLUS = SurplusTrialError("the study had its 1 trials when trial 7 started: not run")
INVALID = ConfigError("invalid setting SPY_BATCH_SIZE=2048 exceeds one rollout")


def scripted(outcomes: Sequence[float | Exception]) -> Callable[[optuna.Trial, TrialSetup], float]:
    """A trial's scoring that ends as listed, one entry per trial: a score, or an exception raised."""
    remaining = iter(outcomes)

    def score(trial: optuna.Trial, setup: TrialSetup) -> float:
        outcome = next(remaining)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return score


def work(monkeypatch: pytest.MonkeyPatch, outcomes: Sequence[float | Exception]) -> worker.WorkerSummary:
    """Run a worker until the study has as many finished trials as ``outcomes`` has scores."""
    monkeypatch.setattr(objective, "_score", scripted(outcomes))  # the real trial around it records the reason
    n_trials = max(1, sum(not isinstance(o, Exception) for o in outcomes))
    setup: Any = TrialSetup(data=None, space=load_search_space(None), config_for=lambda _: None,  # type: ignore[arg-type]
                            n_trials=n_trials, worker="test", stop=StopRequest())  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return run_worker(optuna.create_study(), setup, timeout=None, poll_seconds=0.01)


@pytest.mark.parametrize(
    "outcomes",
    [[SURPLUS, SURPLUS, SURPLUS, 0.5], [INVALID, INVALID, SURPLUS, 0.5], [INVALID, 0.1, INVALID, INVALID, 0.5]],
    ids=["surplus-only", "surplus-between-invalid", "reset-by-a-run"],
)
def test_surplus_refusals_do_not_end_the_worker(
    monkeypatch: pytest.MonkeyPatch, outcomes: list[float | Exception]
) -> None:
    summary = work(monkeypatch, outcomes)
    assert summary.ran["COMPLETE"] == summary.study_finished == sum(not isinstance(o, Exception) for o in outcomes)
    assert summary.ran.get("FAIL", 0) == sum(isinstance(o, Exception) for o in outcomes)


@pytest.mark.parametrize("outcomes", [[INVALID] * 3, [INVALID, SURPLUS, INVALID, SURPLUS, INVALID]])
def test_three_trials_in_a_row_whose_settings_do_not_combine_end_the_worker(
    monkeypatch: pytest.MonkeyPatch, outcomes: list[float | Exception]
) -> None:
    with pytest.raises(ConfigError, match="3 trials in a row drew settings that do not combine"):
        work(monkeypatch, outcomes)
