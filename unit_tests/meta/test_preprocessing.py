from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from finrl.errors import DataError
from finrl.meta.preprocessing import DateWindow, FeatureNormalizer, split_by_dates
from unit_tests.conftest import make_bars

pytestmark = pytest.mark.unit


@pytest.fixture
def index() -> pd.DatetimeIndex:
    return pd.DatetimeIndex(make_bars(1000, start="2015-01-02").index)


def test_default_split_is_consecutive_and_disjoint(index: pd.DatetimeIndex) -> None:
    split = split_by_dates(index)
    assert split.train.start == index[0].date()
    assert split.validation is not None and split.test is not None
    assert split.train.end < split.validation.start <= split.validation.end < split.test.start
    assert split.test.end == index[-1].date()
    frame = pd.DataFrame(index=index, data={"x": 1.0})
    sizes = [len(w.slice(frame)) for w in (split.train, split.validation, split.test)]
    assert sum(sizes) == len(index)
    assert sizes[0] == 700


def test_explicit_dates_win(index: pd.DatetimeIndex) -> None:
    split = split_by_dates(
        index, train_start=date(2015, 6, 1), train_end=date(2016, 12, 31), test_start=date(2018, 1, 2)
    )
    assert split.train == DateWindow(date(2015, 6, 1), date(2016, 12, 31))
    assert split.validation is not None
    assert split.validation.start == date(2017, 1, 3) and split.validation.end == date(2017, 12, 29)
    assert split.test is not None and split.test.start == date(2018, 1, 2)


def test_train_to_the_end_leaves_no_test(index: pd.DatetimeIndex) -> None:
    split = split_by_dates(index, train_end=index[-1].date(), with_validation=False)
    assert split.validation is None and split.test is None
    assert split.train.end == index[-1].date()


def test_explicit_train_end_holds_validation_out_of_the_training_window(index: pd.DatetimeIndex) -> None:
    """Model selection must not look at the period right after training: that is the default test."""
    declared_end = date(2017, 12, 29)
    split = split_by_dates(index, train_start=date(2015, 1, 2), train_end=declared_end)
    assert split.validation is not None and split.test is not None
    assert split.validation.end == declared_end
    assert split.train.end < split.validation.start
    assert split.test.start > declared_end
    declared = index[(index >= "2015-01-02") & (index <= "2017-12-29")]
    held_out = declared[declared >= pd.Timestamp(split.validation.start)]
    assert len(held_out) == int(len(declared) * 0.15 / 0.85)


def test_without_validation_the_whole_declared_window_trains(index: pd.DatetimeIndex) -> None:
    split = split_by_dates(index, train_end=date(2017, 12, 29), with_validation=False)
    assert split.validation is None and split.train.end == date(2017, 12, 29)
    assert split.test is not None and split.test.start == date(2018, 1, 2)


def test_overlapping_windows_are_refused(index: pd.DatetimeIndex) -> None:
    with pytest.raises(DataError, match="overlaps"):
        split_by_dates(index, train_end=date(2017, 6, 30), val_start=date(2017, 1, 3), val_end=date(2017, 12, 29))


def test_empty_and_inverted_windows() -> None:
    frame = make_bars(100, start="2016-01-04")
    with pytest.raises(DataError, match="no trading days"):
        DateWindow(date(2030, 1, 1), date(2030, 12, 31)).slice(frame, what="test window")
    with pytest.raises(DataError, match="starts after it ends"):
        DateWindow(date(2020, 1, 2), date(2020, 1, 1))
    with pytest.raises(DataError, match="empty"):
        split_by_dates(pd.DatetimeIndex([]))


def test_normaliser_is_fitted_on_training_rows_only() -> None:
    frame = make_bars(500)
    train = frame.iloc[:300]
    columns = ["close", "volume"]
    fitted = FeatureNormalizer.fit(train, columns)
    leaked = frame.copy()
    leaked.iloc[300:, :] *= 1000  # the future changes wildly
    assert FeatureNormalizer.fit(leaked.iloc[:300], columns) == fitted
    scaled = fitted.transform(train)
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-5)
    assert scaled.dtype == np.float32


def test_normaliser_clips_and_handles_constant_columns() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "flat": [5.0] * 4})
    norm = FeatureNormalizer.fit(frame, ["a", "flat"], clip=1.0)
    out = norm.transform(pd.DataFrame({"a": [100.0], "flat": [5.0]}))
    assert out.tolist() == [[1.0, 0.0]]


def test_normaliser_round_trip_and_schema_check() -> None:
    norm = FeatureNormalizer.fit(make_bars(100), ["close", "volume"])
    again = FeatureNormalizer.from_dict(norm.to_dict())
    assert again == norm
    with pytest.raises(DataError, match="lacks feature column"):
        norm.transform(pd.DataFrame({"close": [1.0]}))
    with pytest.raises(DataError, match="inconsistent"):
        FeatureNormalizer.from_dict({"columns": ["a"], "mean": [0.0, 1.0], "std": [1.0]})
