"""The NYSE calendar in one place: trading sessions for validation and backtests, and each
session's real open and close (early closes included) for the paper trader's clock.

``exchange_calendars`` is imported on first use: it is heavy, and most commands never need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

from finrl.errors import DataError

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

CALENDAR = "XNYS"
NEW_YORK = ZoneInfo("America/New_York")  # the exchange's clock: sessions, cut-offs and messages use it


@dataclass(frozen=True)
class SessionTimes:
    """One trading day with its real open and close (early closes included), timezone-aware."""

    day: date
    open: datetime
    close: datetime


@lru_cache(maxsize=4)
def nyse_calendar(first_year: int) -> ExchangeCalendar:
    import exchange_calendars as xc

    return xc.get_calendar(CALENDAR, start=f"{min(first_year, 1990)}-01-01")


def calendar_range(first_year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last session the calendar knows (it ends about a year from today)."""
    calendar = nyse_calendar(first_year)
    return pd.Timestamp(calendar.first_session).tz_localize(None), pd.Timestamp(calendar.last_session).tz_localize(None)


def trading_sessions(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """NYSE sessions between two dates inclusive (tz-naive midnights); dates the calendar does not
    cover (a file dated 2099) are one :class:`DataError` line."""
    known_first, known_last = calendar_range(first.year)
    if pd.Timestamp(first) < known_first or pd.Timestamp(last) > known_last:
        raise DataError(
            f"dates {pd.Timestamp(first):%Y-%m-%d}..{pd.Timestamp(last):%Y-%m-%d} reach outside the NYSE calendar "
            f"({known_first:%Y-%m-%d}..{known_last:%Y-%m-%d}): check the data's dates"
        )
    sessions = pd.DatetimeIndex(nyse_calendar(first.year).sessions_in_range(first, last))
    return pd.DatetimeIndex((sessions.tz_localize(None) if sessions.tz else sessions).astype("datetime64[ns]"))


def nyse_sessions(start: date, end: date) -> list[SessionTimes]:
    """Sessions from ``start`` to ``end`` inclusive with their UTC open and close times."""
    schedule = nyse_calendar(start.year).schedule.loc[pd.Timestamp(start) : pd.Timestamp(end)]
    return [
        SessionTimes(day.date(), row["open"].to_pydatetime(), row["close"].to_pydatetime())
        for day, row in schedule.iterrows()
    ]


def last_final_session(moment: datetime, delay: timedelta) -> date | None:
    """The last session whose daily bar is final at ``moment``: its real close (early closes
    included) plus ``delay`` (the data vendor's settle time) has passed. None: none in 10 days."""
    start = (moment - timedelta(days=10)).date()
    done = [s.day for s in nyse_sessions(start, moment.date()) if s.close + delay <= moment]
    return done[-1] if done else None


def et(moment: datetime, *, seconds: bool = False) -> str:
    """``moment`` on the exchange's clock, for people: ``2024-12-26 19:05 ET``."""
    return f"{moment.astimezone(NEW_YORK):%Y-%m-%d %H:%M{':%S' if seconds else ''}} ET"
