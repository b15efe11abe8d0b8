"""Walk-forward folds: windows in order, no test day twice, rolling vs anchored, clear refusals."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from finrl.calendar import trading_sessions
from finrl.errors import ConfigError, DataError
from finrl.research.folds import MIN_TEST_DAYS, FoldPlan, plan_folds

pytestmark = pytest.mark.unit

DAYS = trading_sessions(pd.Timestamp("2015-04-01"), pd.Timestamp("2024-12-31"))


def plan(**changes: object) -> FoldPlan:
    values: dict[str, object] = dict(
        scheme="rolling", train_years=5, val_months=12, test_months=12, step_months=12,
        start=date(2015, 1, 1), end=date(2024, 12, 31),
    )  # fmt: skip
    values.update(changes)
    return FoldPlan(**values)  # type: ignore[arg-type]  # test values


def test_rolling_yearly_folds_on_2015_2024() -> None:
    folds = plan_folds(DAYS, plan())
    assert [(f.test.start, f.test.end) for f in folds] == [
        (date(2021, 1, 4), date(2021, 12, 31)),
        (date(2022, 1, 3), date(2022, 12, 30)),
        (date(2023, 1, 3), date(2023, 12, 29)),
        (date(2024, 1, 2), date(2024, 12, 31)),
    ]
    first = folds[0]
    assert first.train.start == date(2015, 4, 1)  # the first day the data has
    assert (first.train.end, first.validation.start, first.validation.end) == (
        date(2019, 12, 31), date(2020, 1, 2), date(2020, 12, 31),
    )  # fmt: skip
    assert folds[1].train.start == date(2016, 1, 4)  # rolling: a fixed five years


def test_every_window_precedes_the_next_and_test_days_are_each_in_one_fold() -> None:
    for scheme in ("rolling", "anchored"):
        folds = plan_folds(DAYS, plan(scheme=scheme, train_years=2, val_months=6, test_months=3, step_months=3))
        seen: set[pd.Timestamp] = set()
        for fold in folds:
            assert fold.train.end < fold.validation.start <= fold.validation.end < fold.test.start <= fold.test.end
            tested = set(DAYS[DAYS.slice_indexer(pd.Timestamp(fold.test.start), pd.Timestamp(fold.test.end))])
            assert not tested & seen
            seen |= tested
        consecutive = pd.DatetimeIndex(sorted(seen))
        assert (consecutive == DAYS[DAYS.slice_indexer(consecutive[0], consecutive[-1])]).all()  # no gaps


def test_anchored_training_grows_from_the_start() -> None:
    folds = plan_folds(DAYS, plan(scheme="anchored", train_years=3))
    assert {f.train.start for f in folds} == {date(2015, 4, 1)}
    assert [f.train.end.year for f in folds] == sorted(f.train.end.year for f in folds)
    assert folds[-1].train.end > folds[0].train.end


def test_a_short_last_test_window_is_cut_at_the_end_or_dropped() -> None:
    cut = plan_folds(DAYS, plan(end=date(2024, 6, 28)))
    assert cut[-1].test == type(cut[-1].test)(date(2024, 1, 2), date(2024, 6, 28))
    dropped = plan_folds(DAYS, plan(end=date(2024, 1, 10)))  # fewer than MIN_TEST_DAYS left
    assert dropped[-1].test.end == date(2023, 12, 29) and MIN_TEST_DAYS > 6


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"step_months": 6}, "would overlap"),
        ({"scheme": "expanding"}, "rolling or anchored"),
        ({"train_years": 0}, "at least 1"),
        ({"start": date(2025, 1, 1)}, "is not before"),
    ],
)
def test_impossible_plans_are_config_errors(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        plan(**changes)


def test_no_room_for_a_fold_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no complete fold fits"):
        plan_folds(DAYS, plan(train_years=9))
