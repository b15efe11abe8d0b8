"""What data to load: plain values, cheap to import (settings build one on every command)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

NETWORK_SOURCES = frozenset({"yahoo", "alpaca"})  # sources whose data grows while a service runs


@dataclass(frozen=True)
class AlpacaCredentials:
    api_key: str
    api_secret: str
    data_url: str | None = None  # market-data host override (tests, proxies)
    feed: str = "iex"


@dataclass(frozen=True)
class DataRequest:
    """What data to load; every field maps to a flag and an ``SPY_*`` setting."""

    source: str = "sample"
    symbol: str = "SPY"
    start: date | None = None
    end: date | None = None
    csv_path: Path | None = None
    vix_csv_path: Path | None = None
    use_vix: bool = True
    offline: bool = False
    alpaca: AlpacaCredentials | None = field(default=None, repr=False)

    @property
    def grows(self) -> bool:
        """True for network sources: a later fetch may hold newer sessions."""
        return self.source in NETWORK_SOURCES
