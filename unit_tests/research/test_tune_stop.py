"""How a tune worker stops: the first SIGTERM ends a fold's training at once (not after the whole fold),
a signal that a training caught itself stops the trial the same way, elsewhere the signal is recorded
for the next check, and a second signal ends the process at once."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from finrl.agents.training import TrainingInterruptedError
from finrl.research.tune.objective import _train
from finrl.research.tune.stop import StopRequest, TuneInterruptedError
from unit_tests.conftest import REPO_ROOT

SECOND_SIGNAL = """
import signal
from finrl.research.tune.stop import StopRequest

stop = StopRequest()
with stop.installed():
    signal.raise_signal(signal.SIGTERM)
    print("recorded", stop.signal, flush=True)
    signal.raise_signal(signal.SIGTERM)
    print("still running", flush=True)
"""


@pytest.mark.integration
def test_a_second_signal_ends_the_worker_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", SECOND_SIGNAL], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"recorded {int(signal.SIGTERM)}"]


def walk_training(train: Callable[[Any], int]) -> Any:
    """A stand-in for the walk-forward: only its ``train(fold)``, as the trial calls it."""
    return SimpleNamespace(train=train)


@pytest.mark.unit
def test_a_signal_while_a_fold_trains_ends_it_at_once() -> None:
    """Also between a check and the moment PPO's loop installs its own handler: the signal raises there."""
    stop, trained = StopRequest(), []

    def train(fold: Any) -> int:
        trained.append(1)
        signal.raise_signal(signal.SIGTERM)  # e.g. while the second seed's model is being built
        trained.append(2)
        return 2

    with stop.installed(), pytest.raises(TuneInterruptedError) as caught:
        _train(walk_training(train), SimpleNamespace(number=2), "trial 4 stopped in fold 2", stop)  # type: ignore[arg-type]
    assert trained == [1]
    assert str(caught.value) == "trial 4 stopped in fold 2: stopped by SIGTERM" and caught.value.exit_code == 143


@pytest.mark.unit
def test_a_stop_requested_before_a_fold_trains_nothing() -> None:
    stop = StopRequest()
    stop.set(signal.SIGTERM)  # arrived while the previous fold was being scored

    def train(fold: Any) -> int:
        pytest.fail("trained after the stop")

    with pytest.raises(TuneInterruptedError, match=r"^trial 4 stopped in fold 3: stopped by SIGTERM$"):
        _train(walk_training(train), SimpleNamespace(number=3), "trial 4 stopped in fold 3", stop)  # type: ignore[arg-type]


@pytest.mark.unit
def test_a_signal_a_training_caught_stops_the_trial_and_arms_the_second_signal() -> None:
    stop = StopRequest()

    def train(fold: Any) -> int:
        raise TrainingInterruptedError("training interrupted by SIGINT at 128 timesteps; checkpoint kept", 2)

    with pytest.raises(TuneInterruptedError, match=r"^trial 1 stopped in fold 3: stopped by SIGINT$") as caught:
        _train(walk_training(train), SimpleNamespace(number=3), "trial 1 stopped in fold 3", stop)  # type: ignore[arg-type]
    assert caught.value.exit_code == 130 and stop.signal == signal.SIGINT


@pytest.mark.unit
def test_outside_a_training_the_first_signal_is_only_recorded() -> None:
    stop = StopRequest()
    with stop.installed():
        signal.raise_signal(signal.SIGTERM)  # while a fold is being scored, or the storage written
        assert stop.signal == signal.SIGTERM
        with pytest.raises(TuneInterruptedError, match=r"^after fold 1: stopped by SIGTERM$"):
            stop.check("after fold 1")
