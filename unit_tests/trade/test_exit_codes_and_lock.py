"""The --once exit codes (one per outcome that needs a person) and the one-instance lock."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from finrl.trade.exit_codes import CycleExit, exit_for_outcome
from finrl.trade.instance_lock import InstanceLockedError, instance_lock

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ("submitted", 0), ("exists", 0), ("no_trade", 0), ("dry_run", 0), (None, 0),
        ("rejected", 10), ("unavailable", 11), ("halted", 12), ("risk_blocked", 13),
    ],
)  # fmt: skip
def test_every_cycle_outcome_has_its_exit_code(outcome: str | None, code: int) -> None:
    assert exit_for_outcome(outcome) == code


@pytest.mark.parametrize("outcome", ["submitted", "exists", "no_trade", "dry_run"])
def test_a_halted_account_never_exits_zero_even_while_it_flattens(outcome: str) -> None:
    assert exit_for_outcome(outcome, halted=True) == CycleExit.HALTED
    assert exit_for_outcome("rejected", halted=True) == CycleExit.REJECTED  # the worse news wins


def test_an_unknown_outcome_is_a_bug_not_a_silent_zero() -> None:
    with pytest.raises(ValueError, match="no exit code"):
        exit_for_outcome("filled_twice")


def test_codes_are_distinct_and_clear_of_the_usual_error_codes() -> None:
    failures = [code for code in CycleExit if code is not CycleExit.OK]
    assert len(set(failures)) == len(failures)
    assert not {1, 2, 3, 130, 143} & {int(code) for code in failures}


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    refused = pytest.raises(InstanceLockedError, match=rf"pid {os.getpid()}.*{re.escape(str(tmp_path))}")
    with instance_lock(tmp_path), refused as info, instance_lock(tmp_path):
        pass  # pragma: no cover - never entered
    assert info.value.exit_code == CycleExit.LOCKED
    with instance_lock(tmp_path):  # released when the holder's block ends
        pass
