"""Errors with their own ``__init__`` survive a pickle round trip: a spawn process pool (walk-forward and tune
with ``--workers`` > 1) sends a worker's error to the parent so, and one that cannot be rebuilt there ends in
a ``BrokenProcessPool`` traceback instead of its one line."""

import pickle

import pytest

from finrl.agents.training import TrainingInterruptedError
from finrl.errors import DataValidationError, FileSystemError
from finrl.http_retry import RetriesExhaustedError
from finrl.research.tune.stop import TuneInterruptedError


@pytest.mark.parametrize(
    "error",
    [
        FileSystemError("/models/run", "read-only file system", "mount it writable", 30),
        DataValidationError("spy.csv", ["row 3: close is negative", "row 9: date repeated"]),
        TrainingInterruptedError("training interrupted by SIGTERM", 15),
        TuneInterruptedError("trial 3 stopped in fold 1: stopped by SIGTERM", 15),
        RetriesExhaustedError("HTTP 503: unavailable", 4),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_a_pickle_round_trip(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
    assert getattr(copy, "exit_code", None) == getattr(error, "exit_code", None)
