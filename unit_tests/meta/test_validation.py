from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finrl.calendar import trading_sessions
from finrl.meta.data.validation import validate_bars
from unit_tests.conftest import make_bars

pytestmark = pytest.mark.unit


def only_error(report, fragment: str) -> None:
    assert len(report.errors) == 1, report.errors
    assert fragment in report.errors[0], report.errors


def test_real_sample_data_has_no_errors(sample_bars: pd.DataFrame) -> None:
    report = validate_bars(sample_bars)
    assert report.ok, report.errors
    assert report.rows == 1257
    assert f"{report.first:%Y-%m-%d}" == "2014-01-03"


def test_generated_bars_are_valid(bars: pd.DataFrame) -> None:
    report = validate_bars(bars)
    assert report.ok and report.warnings == []


def test_nyse_calendar_knows_holidays() -> None:
    sessions = trading_sessions(pd.Timestamp("2024-12-20"), pd.Timestamp("2025-01-03"))
    assert pd.Timestamp("2024-12-25") not in sessions
    assert pd.Timestamp("2025-01-01") not in sessions
    assert pd.Timestamp("2024-12-24") in sessions  # a half day is still a session


def test_missing_trading_day(bars: pd.DataFrame) -> None:
    gone = bars.index[100]
    only_error(validate_bars(bars.drop(gone)), f"1 NYSE trading day(s) missing: {gone:%Y-%m-%d}")


def test_extra_non_trading_day(bars: pd.DataFrame) -> None:
    saturday = bars.index[50] + pd.offsets.Week(weekday=5)
    extra = pd.concat([bars, bars.iloc[[50]].set_axis([saturday])]).sort_index()
    only_error(validate_bars(extra), f"not NYSE trading days: {saturday:%Y-%m-%d}")


def test_duplicate_dates(bars: pd.DataFrame) -> None:
    duplicated = pd.concat([bars, bars.iloc[[10]]]).sort_index()
    only_error(validate_bars(duplicated), f"duplicate dates: {bars.index[10]:%Y-%m-%d}")


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("low", 1e6, "high below low"),
        ("close", 1e6, "open/close outside the low..high range"),
        ("open", -1.0, "non-positive prices"),
        ("adj_close", 0.0, "non-positive prices"),
        ("volume", 0.0, "non-positive volume"),
        ("close", np.nan, "missing close values"),
        ("vix", np.nan, "missing vix values"),
        ("vix", -3.0, "non-positive VIX"),
    ],
)
def test_bad_values_are_errors_with_dates(bars: pd.DataFrame, column: str, value: float, fragment: str) -> None:
    broken = bars.copy()
    day = broken.index[42]
    broken.loc[day, column] = value
    report = validate_bars(broken)
    assert not report.ok
    matching = [e for e in report.errors if fragment in e]
    assert matching, report.errors
    assert f"{day:%Y-%m-%d}" in matching[0]


def test_absurd_jump_is_a_warning_with_its_date(bars: pd.DataFrame) -> None:
    jumped = bars.copy()
    day = jumped.index[200]
    jumped.loc[day:, ["open", "high", "low", "close", "adj_close"]] *= 1.5
    report = validate_bars(jumped)
    assert report.ok
    assert any("daily moves above 20%" in w and f"{day:%Y-%m-%d}" in w for w in report.warnings)


def test_adjustment_factor_jump_is_a_warning(bars: pd.DataFrame) -> None:
    skewed = bars.copy()
    skewed.loc[skewed.index[150] :, "adj_close"] *= 0.5
    report = validate_bars(skewed)
    assert any("adjustment factor" in w for w in report.warnings)


def test_empty_frame_is_an_error() -> None:
    report = validate_bars(make_bars().iloc[0:0])
    assert report.errors == ["no rows in the requested date range"]


def test_many_dates_are_shortened() -> None:
    broken = make_bars()
    broken.loc[broken.index[:30], "volume"] = 0.0
    (error,) = validate_bars(broken).errors
    assert "(+22 more)" in error
