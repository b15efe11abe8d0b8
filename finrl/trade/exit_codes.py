"""The exit codes of one paper-trading cycle (``spy-rl paper --once``), in one place.

Cron, systemd timers and Kubernetes CronJobs only see the exit status, so every outcome that
needs a person (an order refused, an order whose fate is unknown, a halted account, a second
instance) gets its own non-zero code. The command, its ``--help`` and the README table all read
this enum, and a test keeps the README in step with it.
"""

from __future__ import annotations

from enum import IntEnum


class CycleExit(IntEnum):
    """Exit status of ``spy-rl paper --once``; 1-3 stay the project's usual error codes."""

    OK = 0  # submitted, exists, no_trade, dry_run, or no session to decide
    REJECTED = 10  # the broker refused the order (or the account is blocked)
    UNKNOWN = 11  # the broker did not answer: the order may exist; reconciled next cycle
    HALTED = 12  # the drawdown halt holds: flattened, no orders until a person resets it
    RISK_BLOCKED = 13  # a risk limit stopped the model's order: the account is off target
    LOCKED = 14  # another paper trader holds the state folder's lock
    LATE_SKIPPED = 15  # the run came after the fill session's auction: nothing sent, that session is missed

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS: dict[CycleExit, str] = {
    CycleExit.OK: "submitted, exists, no_trade, dry_run, or nothing to decide",
    CycleExit.REJECTED: "rejected: the broker refused the order",
    CycleExit.UNKNOWN: "unavailable: outcome unknown, reconciled next cycle",
    CycleExit.HALTED: "halted: the drawdown halt holds (flatten, then no orders)",
    CycleExit.RISK_BLOCKED: "risk_blocked: a risk limit stopped the order",
    CycleExit.LOCKED: "another instance holds the state folder's lock",
    CycleExit.LATE_SKIPPED: "late_skipped: ran after the auction; no order, next close",
}

_BY_OUTCOME: dict[str, CycleExit] = {
    "submitted": CycleExit.OK,
    "exists": CycleExit.OK,
    "no_trade": CycleExit.OK,
    "dry_run": CycleExit.OK,
    "rejected": CycleExit.REJECTED,
    "unavailable": CycleExit.UNKNOWN,
    "halted": CycleExit.HALTED,
    "risk_blocked": CycleExit.RISK_BLOCKED,
    "late_skipped": CycleExit.LATE_SKIPPED,
}


def exit_for_outcome(outcome: str | None, *, halted: bool = False) -> CycleExit:
    """The exit status for a cycle's outcome (``None``: no session to decide, which is fine).

    A halted account still sends its flattening order (outcome ``submitted``), yet stays halted:
    such a cycle exits with ``HALTED`` so that the halt is never reported as a plain success.
    """
    if outcome is None:
        return CycleExit.OK
    try:
        code = _BY_OUTCOME[outcome]
    except KeyError:
        raise ValueError(f"no exit code for cycle outcome {outcome!r}") from None
    return CycleExit.HALTED if halted and code is CycleExit.OK else code


def exit_code_help() -> str:
    """One line per code, short enough for an 80-column ``--help``."""
    return "\n".join(f"{code.value:>3}  {code.meaning}" for code in CycleExit)
