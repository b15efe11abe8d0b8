"""What data to load: plain values, cheap to import (settings build one on every command)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

GROWING_SOURCES = frozenset({"yahoo", "alpaca", "csv"})  # data that grows while a service runs (a live CSV too)


@dataclass(frozen=True)
class AlpacaCredentials:
    api_key: str
    api_secret: str
    feed: str  # iex, sip or delayed_sip (``Settings`` holds the default)
    data_url: str | None = None  # market-data host override (tests, proxies); None: Alpaca's own


@dataclass(frozen=True)
class DataRequest:
    """What data to load; every field maps to a flag and an ``SPY_*`` setting.

    The values come from the caller (``Settings`` holds the defaults); only the optional ones
    default, to None: not given (the whole range, no file, no keys).
    """

    source: str
    symbol: str
    use_vix: bool
    offline: bool
    start: date | None = None
    end: date | None = None
    csv_path: Path | None = None
    vix_source: str | None = None  # yahoo, csv or sample; None: the csv file if given, else as the bars' source
    vix_csv_path: Path | None = None
    alpaca: AlpacaCredentials | None = field(default=None, repr=False)
    data_timeout: float | None = None  # seconds per market-data request; None: finrl.http_retry's
    data_retries: int | None = None  # retries of a transiently failing request; None: finrl.http_retry's
    flag_prefix: str = ""  # error messages name --<prefix>csv and the like: "live-" for the paper trader
    final_delay: timedelta | None = None  # a bar is final this long after its session's close; None: 15 min

    @property
    def grows(self) -> bool:
        """True unless the offline sample: a later fetch (or a rewritten file) may hold newer sessions."""
        return self.source in GROWING_SOURCES
