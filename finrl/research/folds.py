"""Walk-forward folds by calendar date: train, then validate, then test, stepping forward.

Fold k starts ``k * step_months`` after ``start``. Its training window covers ``train_years``
(rolling) or everything from ``start`` (anchored); validation follows for ``val_months``, then
the test window for ``test_months``. Windows are calendar spans snapped to the trading days the
features have (indicator warm-up days are simply absent). A fold whose test window would run
past ``end`` is cut at ``end``; folds stop when fewer than ``MIN_TEST_DAYS`` test days remain.
The step is at least the test length, so every test day belongs to exactly one fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import pandas as pd

from finrl.errors import ConfigError, DataError
from finrl.meta.preprocessing import DataSplit, DateWindow

Scheme = Literal["rolling", "anchored"]
MIN_TEST_DAYS = 20  # a test window shorter than about a month says little; drop it


@dataclass(frozen=True)
class FoldPlan:
    scheme: Scheme
    train_years: int
    val_months: int
    test_months: int
    step_months: int
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.scheme not in ("rolling", "anchored"):
            raise ConfigError(f"--scheme must be rolling or anchored, got {self.scheme!r}")
        if self.train_years < 1 or self.val_months < 1 or self.test_months < 1:
            raise ConfigError("--train-years, --val-months and --test-months must be at least 1")
        if self.step_months < self.test_months:
            raise ConfigError(
                f"--step-months {self.step_months} is shorter than --test-months {self.test_months}: "
                "test windows would overlap and a day would be tested twice"
            )
        if self.start >= self.end:
            raise ConfigError(f"--start {self.start} is not before --end {self.end}")


@dataclass(frozen=True)
class Fold:
    number: int  # 1-based
    train: DateWindow
    validation: DateWindow
    test: DateWindow

    @property
    def split(self) -> DataSplit:
        return DataSplit(self.train, self.validation, self.test)

    def to_dict(self) -> dict[str, object]:
        windows = {"train": self.train, "validation": self.validation, "test": self.test}
        return {"fold": self.number, **{name: window.to_dict() for name, window in windows.items()}}


def plan_folds(days: pd.DatetimeIndex, plan: FoldPlan) -> list[Fold]:
    """The folds of ``plan`` over the trading days ``days`` (the features' index)."""
    start, end = pd.Timestamp(plan.start), pd.Timestamp(plan.end)
    folds: list[Fold] = []
    for k in range(1000):  # bounded: a plan over a century still ends long before
        anchor = start + pd.DateOffset(months=k * plan.step_months)
        train_from = anchor if plan.scheme == "rolling" else start
        train_to = anchor + pd.DateOffset(years=plan.train_years)
        val_to = train_to + pd.DateOffset(months=plan.val_months)
        test_to = min(val_to + pd.DateOffset(months=plan.test_months), end + pd.Timedelta(days=1))
        test_days = _days(days, val_to, test_to)
        if len(test_days) < MIN_TEST_DAYS:
            break
        windows = [_days(days, train_from, train_to), _days(days, train_to, val_to), test_days]
        names = ("training", "validation", "test")
        for name, window in zip(names, windows, strict=True):
            if len(window) < 2:
                raise DataError(
                    f"fold {k + 1}: the {name} window from {train_from:%Y-%m-%d} holds {len(window)} trading day(s) "
                    "of the data: load more data or shorten the windows"
                )
        folds.append(Fold(k + 1, *(DateWindow(w[0].date(), w[-1].date()) for w in windows)))
    if not folds:
        raise DataError(
            f"no complete fold fits between {plan.start} and {plan.end}: {plan.train_years}y training + "
            f"{plan.val_months}m validation + at least {MIN_TEST_DAYS} test days are needed"
        )
    return folds


def _days(days: pd.DatetimeIndex, first: pd.Timestamp, stop: pd.Timestamp) -> pd.DatetimeIndex:
    """Trading days in [first, stop)."""
    return days[(days >= first) & (days < stop)]
