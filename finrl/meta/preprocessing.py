"""Date splits and feature normalisation fitted on the training window only.

The normaliser is plain data (column names, means, standard deviations) so it can live in a
model bundle as JSON and be re-applied bit-for-bit in backtests and live trading.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from finrl.errors import DataError

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class DateWindow:
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise DataError(f"date window starts after it ends: {self.start} > {self.end}")

    def slice(self, frame: pd.DataFrame, *, what: str = "window") -> pd.DataFrame:
        part = frame.loc[pd.Timestamp(self.start) : pd.Timestamp(self.end)]
        if part.empty:
            raise DataError(f"the {what} {self.start}..{self.end} holds no trading days of the data")
        return part

    def overlaps(self, other: DateWindow) -> bool:
        return self.start <= other.end and other.start <= self.end

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> DateWindow:
        return cls(date.fromisoformat(data["start"]), date.fromisoformat(data["end"]))


@dataclass(frozen=True)
class DataSplit:
    train: DateWindow
    validation: DateWindow | None
    test: DateWindow | None

    @property
    def seen_end(self) -> date:
        """The last day the model saw, training or choosing (validation): a test starts after it."""
        return max(self.train.end, self.validation.end) if self.validation else self.train.end

    def to_dict(self) -> dict[str, Any]:
        return {k: (w.to_dict() if w else None) for k, w in self.__dict__.items()}


def _day(ts: pd.Timestamp) -> date:
    return ts.date()


def split_by_dates(
    index: pd.DatetimeIndex,
    *,
    train_start: date | None = None,
    train_end: date | None = None,
    val_start: date | None = None,
    val_end: date | None = None,
    test_start: date | None = None,
    test_end: date | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    with_validation: bool = True,
) -> DataSplit:
    """Consecutive train / validation / test windows over the trading days in ``index``.

    Explicit dates win. Without validation dates the validation window is, in order: the gap
    between an explicit ``train_end`` and ``test_start``; else, with an explicit ``train_end``,
    the last ``fractions[1]`` share of the declared training window (so that the default test
    period right after training stays unseen by model selection); else the middle fraction.
    Open boundaries follow ``fractions``. Windows never overlap; an empty one is ``None``.
    """
    if len(index) == 0:
        raise DataError("cannot split an empty dataset")
    days = pd.DatetimeIndex(index)
    n = len(days)

    def day_at(share: float) -> date:
        return _day(days[min(n - 1, max(0, int(n * share) - 1))])

    t_start = train_start or _day(days[0])
    t_end = train_end or day_at(fractions[0])
    validation: DateWindow | None = None
    if with_validation and (val_start or val_end):
        after = days[days > pd.Timestamp(t_end)]
        v_start = val_start or (_day(after[0]) if len(after) else t_end)
        validation = DateWindow(v_start, val_end or day_at(fractions[0] + fractions[1]))
    elif with_validation and train_end is not None:
        gap = days[(days > pd.Timestamp(t_end)) & (days < pd.Timestamp(test_start))] if test_start else days[:0]
        if len(gap):
            validation = DateWindow(_day(gap[0]), _day(gap[-1]))
        else:
            declared = days[(days >= pd.Timestamp(t_start)) & (days <= pd.Timestamp(t_end))]
            held_out = int(len(declared) * fractions[1] / (fractions[0] + fractions[1]))
            if held_out >= 2 and len(declared) - held_out >= 2:
                validation = DateWindow(_day(declared[-held_out]), _day(declared[-1]))
                t_end = _day(declared[-held_out - 1])
    elif with_validation:
        after = days[days > pd.Timestamp(t_end)]
        if len(after):
            v_end = day_at(fractions[0] + fractions[1])
            if test_start is not None:
                before_test = after[after < pd.Timestamp(test_start)]
                v_end = _day(before_test[-1]) if len(before_test) else _day(after[0])
            if pd.Timestamp(v_end) >= after[0]:
                validation = DateWindow(_day(after[0]), v_end)
    train = DateWindow(t_start, t_end)

    after = days[days > pd.Timestamp(DataSplit(train, validation, None).seen_end)]
    test = None
    s_start = test_start or (_day(after[0]) if len(after) else None)
    if s_start is not None:
        test = DateWindow(s_start, test_end or _day(days[-1]))

    windows = [("train", train), ("validation", validation), ("test", test)]
    present = [(name, w) for name, w in windows if w is not None]
    for (name_a, a), (name_b, b) in itertools.pairwise(present):
        if a.overlaps(b):
            raise DataError(f"the {name_a} window {a.start}..{a.end} overlaps the {name_b} window {b.start}..{b.end}")
    return DataSplit(train, validation, test)


@dataclass(frozen=True)
class FeatureNormalizer:
    """z-score per column with statistics from the training window; values clipped to ``clip``."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip: float = 10.0

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: tuple[str, ...] | list[str], clip: float = 10.0) -> FeatureNormalizer:
        values = frame[list(columns)].to_numpy(dtype=np.float64)
        if len(values) < 2:
            raise DataError("need at least two training days to fit the feature normalisation")
        std = values.std(axis=0, ddof=0)
        std = np.where(std > 1e-12, std, 1.0)  # a constant column passes through centred
        return cls(tuple(columns), tuple(map(float, values.mean(axis=0))), tuple(map(float, std)), clip)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(f"data lacks feature column(s) the model was trained with: {', '.join(missing)}")
        values = frame[list(self.columns)].to_numpy(dtype=np.float64)
        scaled = (values - np.asarray(self.mean, dtype=np.float64)) / np.asarray(self.std, dtype=np.float64)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "mean": list(self.mean),
            "std": list(self.std),
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureNormalizer:
        try:
            columns, mean, std = tuple(data["columns"]), tuple(data["mean"]), tuple(data["std"])
        except KeyError as exc:
            raise DataError(f"normalisation statistics lack {exc}") from exc
        if not (len(columns) == len(mean) == len(std)):
            raise DataError("normalisation statistics have inconsistent lengths")
        return cls(columns, tuple(map(float, mean)), tuple(map(float, std)), float(data.get("clip", 10.0)))
