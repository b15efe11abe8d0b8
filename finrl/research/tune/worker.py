"""The worker loop of ``spy-rl tune run``: trials until the study has its number of finished trials.

``--n-trials N`` is the study's budget, not each worker's: any number of workers, started and
stopped at any time, together finish exactly N trials (complete or pruned). A worker starts a
trial while finished + running trials leave room (or a trial waits to be retried); when the
others' running trials fill the budget it waits for them, so that a trial whose worker died is
failed after its grace period and run again by one that is still alive. The study is done when
N trials are finished; each worker then exits 0.

Signals (see :mod:`.stop`): the first SIGTERM or SIGINT fails the trial in progress with the reason
(``fail_reason``), at once while a fold trains (a training ends after its current step), else after
the fold; no trial is left RUNNING, and the worker exits 143 (130). A second one ends the worker at
once. A trial never started is not touched.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from finrl.errors import ConfigError
from finrl.log import get_logger
from finrl.research.tune.objective import SurplusTrialError, TrialSetup, objective
from finrl.research.tune.trials import FAIL_REASON_ATTR, state_counts

if TYPE_CHECKING:
    import optuna

log = get_logger(__name__)

MAX_INVALID_IN_A_ROW = 3  # trials whose drawn settings do not combine (e.g. batch > rollout) before giving up


def worker_id() -> str:
    """The Kubernetes Indexed Job's completion index where there is one, else host and process."""
    index = os.environ.get("JOB_COMPLETION_INDEX")
    return f"index-{index}" if index else f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerSummary:
    ran: dict[str, int]  # this worker's trials by final state (COMPLETE, PRUNED, FAIL)
    study_finished: int  # the study's finished trials when the worker stopped
    timed_out: bool


def run_worker(study: optuna.Study, setup: TrialSetup, timeout: float | None, poll_seconds: float) -> WorkerSummary:
    """Run trials of ``study`` until it has ``setup.n_trials`` finished ones (or ``timeout`` seconds passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ran: Counter[str] = Counter()
    invalid_in_a_row = 0
    run = objective(setup)
    error: BaseException | None = None  # how the last trial ended, when it raised

    def attempt(trial: optuna.Trial) -> float:
        nonlocal error
        error = None
        try:
            return run(trial)
        except BaseException as exc:
            error = exc
            raise

    def record(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ran[trial.state.name] += 1
        log.info("tune_trial", trial=trial.number, state=trial.state.name, value=trial.value, worker=setup.worker,
                 reason=trial.user_attrs.get(FAIL_REASON_ATTR))  # fmt: skip

    log.info("tune_worker_start", study=study.study_name, worker=setup.worker, n_trials=setup.n_trials)
    while True:
        setup.stop.check(f"worker {setup.worker}")
        counts = state_counts(study)
        finished = counts["COMPLETE"] + counts["PRUNED"]
        if finished >= setup.n_trials:
            return WorkerSummary(dict(ran), finished, timed_out=False)
        if deadline is not None and time.monotonic() >= deadline:
            log.info("tune_worker_timeout", worker=setup.worker, finished=finished)
            return WorkerSummary(dict(ran), finished, timed_out=True)
        if counts["WAITING"] == 0 and finished + counts["RUNNING"] >= setup.n_trials:
            _fail_stale(study)  # the last trials run elsewhere: fail a dead worker's, then retry it here
            setup.stop.wait(poll_seconds)
            continue
        study.optimize(attempt, n_trials=1, catch=(SurplusTrialError, ConfigError), callbacks=[record])
        invalid_in_a_row = _invalid_in_a_row(invalid_in_a_row, error)
        if invalid_in_a_row >= MAX_INVALID_IN_A_ROW:
            raise ConfigError(
                f"{invalid_in_a_row} trials in a row drew settings that do not combine; "
                "narrow the search space (see the trials' fail_reason)"
            )


def _invalid_in_a_row(count: int, error: BaseException | None) -> int:
    """Trials in a row whose drawn settings do not combine (they raise :class:`ConfigError`), after one more
    trial that ended with ``error``. A trial refused as surplus drew nothing, so it says nothing about the
    space and leaves the count as it was; a trial that ran (complete, pruned) resets it."""
    if isinstance(error, SurplusTrialError):
        return count
    return count + 1 if isinstance(error, ConfigError) else 0


def _fail_stale(study: optuna.Study) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's own lines repeat ours (``tune_trial`` has the state, value and reason of every trial)
    and print a traceback for each trial a worker fails on purpose; keep only its errors."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)
