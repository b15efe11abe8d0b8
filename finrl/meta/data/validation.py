"""Checks a bar frame must pass before anything trains or trades on it.

Errors make the data unusable (gaps, duplicates, impossible prices); warnings are plausible but
unusual (very large moves, adjustment-factor jumps) and are reported with their dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finrl.calendar import calendar_range, trading_sessions
from finrl.meta.data.frames import BAR_COLUMNS

MAX_DATES_SHOWN = 8
JUMP_WARNING = 0.20  # |log return| above this in one day is worth a human look
ADJUSTMENT_JUMP_WARNING = 0.05  # adj_close/close moving this much in a day: split or bad adjustment
_PRICE_TOLERANCE = 1e-6  # relative slack for rounding in vendor OHLC


@dataclass
class ValidationReport:
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        span = f"{self.first:%Y-%m-%d}..{self.last:%Y-%m-%d}" if self.rows else "empty"
        return f"{self.rows} rows, {span}, {len(self.errors)} error(s), {len(self.warnings)} warning(s)"


def _dates(index: pd.Index) -> str:
    shown = ", ".join(f"{d:%Y-%m-%d}" for d in index[:MAX_DATES_SHOWN])
    more = len(index) - MAX_DATES_SHOWN
    return shown + (f" (+{more} more)" if more > 0 else "")


def validate_bars(bars: pd.DataFrame, *, check_calendar: bool = True) -> ValidationReport:
    """Validate a canonical bar frame (see :mod:`finrl.meta.data.frames`)."""
    if bars.empty:
        return ValidationReport(0, None, None, errors=["no rows in the requested date range"])
    index = pd.DatetimeIndex(bars.index)
    report = ValidationReport(len(bars), index.min(), index.max())
    err, warn = report.errors.append, report.warnings.append

    duplicated = index[index.duplicated()]
    if len(duplicated):
        err(f"duplicate dates: {_dates(duplicated.unique())}")
    if not index.is_monotonic_increasing:
        err("dates are not in ascending order")

    columns = [c for c in (*BAR_COLUMNS, "vix") if c in bars.columns]
    for column in columns:
        missing = index[bars[column].isna().to_numpy()]
        if len(missing):
            err(f"missing {column} values on {_dates(missing)}")

    prices = bars[["open", "high", "low", "close", "adj_close"]]
    non_positive = index[(prices <= 0).any(axis=1).to_numpy()]
    if len(non_positive):
        err(f"non-positive prices on {_dates(non_positive)}")
    no_volume = index[(bars["volume"] <= 0).to_numpy()]
    if len(no_volume):
        err(f"non-positive volume on {_dates(no_volume)}")
    if "vix" in bars.columns:
        bad_vix = index[(bars["vix"] <= 0).to_numpy()]
        if len(bad_vix):
            err(f"non-positive VIX on {_dates(bad_vix)}")

    slack = bars["high"] * _PRICE_TOLERANCE
    high_low = index[(bars["high"] + slack < bars["low"]).to_numpy()]
    if len(high_low):
        err(f"high below low on {_dates(high_low)}")
    body_lo = bars[["open", "close"]].min(axis=1)
    body_hi = bars[["open", "close"]].max(axis=1)
    outside = index[((body_lo + slack < bars["low"]) | (body_hi - slack > bars["high"])).to_numpy()]
    if len(outside):
        err(f"open/close outside the low..high range on {_dates(outside)}")

    if check_calendar and index.is_unique:
        known_first, known_last = calendar_range(index.min().year)
        outside_calendar = index[(index < known_first) | (index > known_last)]
        if len(outside_calendar):  # a file dated 2099: the calendar cannot say which days should be there
            err(
                f"{len(outside_calendar)} date(s) outside the NYSE calendar "
                f"({known_first:%Y-%m-%d}..{known_last:%Y-%m-%d}): {_dates(outside_calendar)}"
            )
        known = index.difference(outside_calendar)
        sessions = trading_sessions(known.min(), known.max()) if len(known) else known
        gaps = sessions.difference(known)
        if len(gaps):
            err(f"{len(gaps)} NYSE trading day(s) missing: {_dates(gaps)}")
        extra = known.difference(sessions)
        if len(extra):
            err(f"{len(extra)} date(s) that are not NYSE trading days: {_dates(extra)}")

    with np.errstate(divide="ignore", invalid="ignore"):
        adjusted, close = bars["adj_close"].to_numpy(dtype=float), bars["close"].to_numpy(dtype=float)
        log_returns = pd.Series(np.log(adjusted), index=bars.index).diff()
        factor_moves = pd.Series(np.log(adjusted / close), index=bars.index).diff()
    jumps = index[(log_returns.abs() > JUMP_WARNING).to_numpy()]
    if len(jumps):
        warn(f"daily moves above {JUMP_WARNING:.0%} on {_dates(jumps)}")
    factor_jumps = index[(factor_moves.abs() > ADJUSTMENT_JUMP_WARNING).to_numpy()]
    if len(factor_jumps):
        warn(f"adjustment factor (adj_close/close) jumps above {ADJUSTMENT_JUMP_WARNING:.0%} on {_dates(factor_jumps)}")
    if "adj_close" in bars.columns and bars["adj_close"].equals(bars["close"]):
        warn("adj_close equals close: returns ignore dividends")
    return report
