"""NYSE sessions with their real open and close times (early closes included)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from finrl.trade.broker import SessionTimes


def nyse_sessions(start: date, end: date) -> list[SessionTimes]:
    from finrl.meta.data.validation import nyse_calendar

    calendar = nyse_calendar(start.year)
    schedule = calendar.schedule.loc[pd.Timestamp(start) : pd.Timestamp(end)]
    return [
        SessionTimes(day.date(), row["open"].to_pydatetime(), row["close"].to_pydatetime())
        for day, row in schedule.iterrows()
    ]
