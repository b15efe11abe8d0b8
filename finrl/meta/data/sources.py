"""Where daily bars come from: Yahoo, a CSV file, Alpaca, or the offline sample.

Each source returns the canonical frame of :mod:`finrl.meta.data.frames`. Network sources are
imported lazily so that ``import finrl`` stays light and offline use never touches them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, cast

import pandas as pd

from finrl.errors import DataError, DownloadError
from finrl.http_retry import (
    RetriesExhaustedError,
    RetryPolicy,
    TransientError,
    api_message,
    call_with_retries,
    configure_alpaca_client,
    is_transient_status,
    retry_after,
    short,
    transient_from_requests,
)
from finrl.log import get_logger, mask_text
from finrl.masking import mask_registered
from finrl.meta.data.frames import canonical_bars, normalise_column_names, to_date_index

if TYPE_CHECKING:
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.models import BarSet

log = get_logger(__name__)

DATA_RETRY = RetryPolicy()
"""Market-data requests time out and retry exactly as the trading client's do (one policy)."""

SAMPLE_LABEL = "S&P 500 index daily bars (arch package sample, 1999-2018): an offline stand-in for SPY"


class BarSource(Protocol):
    """Daily bars for one symbol; ``cache_token`` identifies the content for the cache key, and
    ``obtained_at`` when the data was obtained (what decides which of its bars can be final)."""

    @property
    def name(self) -> str: ...

    @property
    def needs_network(self) -> bool: ...

    @property
    def label(self) -> str: ...

    def cache_token(self) -> str: ...

    def obtained_at(self, now: datetime) -> datetime: ...

    def fetch(self, symbol: str, start: date | None, end: date | None) -> pd.DataFrame: ...


class VixSource(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def needs_network(self) -> bool: ...

    def cache_token(self) -> str: ...

    def obtained_at(self, now: datetime) -> datetime: ...

    def fetch_vix(self, start: date | None, end: date | None) -> pd.Series: ...


_Frame = TypeVar("_Frame", pd.DataFrame, pd.Series)
T = TypeVar("T")


def _between(frame: _Frame, start: date | None, end: date | None) -> _Frame:
    lo = pd.Timestamp(start) if start else None
    hi = pd.Timestamp(end) if end else None
    return frame.loc[lo:hi]


def _file_token(path: Path) -> str:
    """A cache token that changes with the file's content."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


def _file_time(path: Path, now: datetime) -> datetime:
    """When a file's data was obtained: its last write (a bar written before its session's close
    settled is partial however late the file is read), never later than ``now``."""
    try:
        written = datetime.fromtimestamp(Path(path).stat().st_mtime, tz=UTC)
    except OSError:
        return now  # a missing file fails in fetch with its own message
    return min(written, now)


class _ObtainedNow:
    """Sources fetched at the moment of the request (the network), or fixed history (the sample)."""

    def obtained_at(self, now: datetime) -> datetime:
        return now


# --------------------------------------------------------------------------- CSV


def read_price_csv(path: Path) -> pd.DataFrame:
    """Read a CSV of daily bars (date, open, high, low, close[, adj_close], volume), any case."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    raw.columns = normalise_column_names(raw.columns)
    if "date" not in raw.columns:
        raise DataError(f"{path}: missing column date (have: {', '.join(raw.columns)})")
    if raw.empty:
        raise DataError(f"{path}: no rows")
    raw.index = to_date_index(raw.pop("date"), what=str(path))
    return raw


@dataclass(frozen=True)
class CsvBarSource:
    path: Path
    name: ClassVar[str] = "csv"
    needs_network: ClassVar[bool] = False

    @property
    def label(self) -> str:
        return f"CSV file {self.path.name}"

    def cache_token(self) -> str:
        return _file_token(self.path)

    def obtained_at(self, now: datetime) -> datetime:
        return _file_time(self.path, now)

    def fetch(self, symbol: str, start: date | None, end: date | None) -> pd.DataFrame:
        bars = canonical_bars(read_price_csv(self.path), what=str(self.path))
        return _between(bars, start, end)


@dataclass(frozen=True)
class CsvVixSource:
    path: Path
    name: ClassVar[str] = "csv"
    needs_network: ClassVar[bool] = False

    @property
    def label(self) -> str:
        return f"VIX CSV file {self.path}"

    def cache_token(self) -> str:
        return _file_token(self.path)

    def obtained_at(self, now: datetime) -> datetime:
        return _file_time(self.path, now)

    def fetch_vix(self, start: date | None, end: date | None) -> pd.Series:
        frame = read_price_csv(self.path)
        column = next((c for c in ("close", "vix", "adj_close") if c in frame.columns), None)
        if column is None:
            raise DataError(f"{self.path}: a VIX CSV needs a close (or vix) column")
        vix = pd.to_numeric(frame[column], errors="coerce").astype("float64").rename("vix").sort_index()
        return _between(vix, start, end)


# --------------------------------------------------------------------------- sample (arch)


@dataclass(frozen=True)
class SampleBarSource(_ObtainedNow):
    """Real S&P 500 index bars shipped with ``arch``; always installed, never needs a network."""

    name: ClassVar[str] = "sample"
    needs_network: ClassVar[bool] = False
    label: ClassVar[str] = SAMPLE_LABEL

    def cache_token(self) -> str:
        from importlib.metadata import version

        return f"arch{version('arch')}"

    def fetch(self, symbol: str, start: date | None, end: date | None) -> pd.DataFrame:
        from arch.data import sp500

        if symbol.upper() != "SPY":
            log.warning("sample_symbol_ignored", symbol=symbol, note="the sample only has the S&P 500 index")
        raw = sp500.load()
        raw.columns = normalise_column_names(raw.columns)
        raw.index = to_date_index(raw.index, what="arch sp500 sample")
        return _between(canonical_bars(raw, what="arch sp500 sample"), start, end)


@dataclass(frozen=True)
class SampleVixSource(_ObtainedNow):
    name: ClassVar[str] = "sample"
    needs_network: ClassVar[bool] = False
    label: ClassVar[str] = "the arch package's VIX sample"

    def cache_token(self) -> str:
        return SampleBarSource().cache_token()

    def fetch_vix(self, start: date | None, end: date | None) -> pd.Series:
        from arch.data import vix

        raw = vix.load()
        series = raw["vix"].dropna().rename("vix")  # the file lists holidays as empty rows
        series.index = to_date_index(series.index, what="arch vix sample")
        return _between(series, start, end)


# --------------------------------------------------------------------------- Yahoo


def _flatten_yahoo(raw: pd.DataFrame | None, symbol: str) -> pd.DataFrame:
    """Flat, canonically named columns and a date index from ``yfinance.download`` output.

    yfinance returns (Price, Ticker) MultiIndex columns since 0.2.48 and flat columns before it
    or with ``multi_level_index=False``; both shapes are accepted.
    """
    if raw is None or raw.empty:
        raise DownloadError(f"Yahoo returned no data for {symbol} (unknown ticker, empty range or no network)")
    frame = raw.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        tickers = set(frame.columns.get_level_values(-1))
        if symbol in tickers:
            # a level of the column MultiIndex selects columns: always a frame, the stubs say "or Series"
            frame = cast(pd.DataFrame, frame.xs(symbol, axis=1, level=-1))
        elif len(tickers) == 1:
            frame.columns = frame.columns.get_level_values(0)
        else:
            raise DataError(f"Yahoo data has no column for {symbol} (tickers: {sorted(tickers)})")
    frame.columns = normalise_column_names(frame.columns)
    frame.index = to_date_index(frame.index, what=f"Yahoo {symbol}")
    return frame.dropna(how="all")


def parse_yahoo_frame(raw: pd.DataFrame | None, symbol: str) -> pd.DataFrame:
    """Canonical bars from yfinance output downloaded with ``auto_adjust=False``.

    With ``auto_adjust=True`` (yfinance's default since 0.2.51) there is no "Adj Close" and OHLC
    are dividend-adjusted, which would fill orders at prices that never traded: refused.
    """
    frame = _flatten_yahoo(raw, symbol)
    if "adj_close" not in frame.columns:
        raise DataError("Yahoo data has no 'Adj Close' column: download with auto_adjust=False")
    return canonical_bars(frame, what=f"Yahoo {symbol}")


def _yahoo_download(
    symbol: str, start: date | None, end: date | None, timeout: float = DATA_RETRY.read_timeout
) -> pd.DataFrame | None:
    import yfinance as yf

    raw: pd.DataFrame | None = yf.download(
        symbol,
        start=start.isoformat() if start else "1993-01-01",
        end=(end + timedelta(days=1)).isoformat() if end else None,  # yfinance's end is exclusive
        auto_adjust=False,
        actions=False,
        progress=False,
        multi_level_index=True,
        threads=False,
        timeout=timeout,  # yfinance's own default is 10 s: the data policy's read timeout instead
    )
    return raw


@dataclass(frozen=True)
class YahooBarSource(_ObtainedNow):
    """Daily bars from Yahoo through yfinance, each request cut at ``timeout`` seconds.

    yfinance reports most network failures as an empty frame rather than an error, so only its
    timeout is set here; retrying an empty answer would also retry an unknown ticker.
    """

    timeout: float = DATA_RETRY.read_timeout
    name: ClassVar[str] = "yahoo"
    needs_network: ClassVar[bool] = True

    @property
    def label(self) -> str:
        return "Yahoo Finance daily bars"

    def cache_token(self) -> str:
        return ""

    def fetch(self, symbol: str, start: date | None, end: date | None) -> pd.DataFrame:
        try:
            raw = _yahoo_download(symbol, start, end, timeout=self.timeout)
        except Exception as exc:  # yfinance raises many network/HTTP error types
            raise DownloadError(mask_registered(f"Yahoo download of {symbol} failed: {short(exc, 120)}")) from exc
        return _between(parse_yahoo_frame(raw, symbol), start, end)


@dataclass(frozen=True)
class YahooVixSource(_ObtainedNow):
    """^VIX closes from Yahoo, each request cut at ``timeout`` seconds (see :class:`YahooBarSource`)."""

    timeout: float = DATA_RETRY.read_timeout
    name: ClassVar[str] = "yahoo"
    needs_network: ClassVar[bool] = True
    ticker: ClassVar[str] = "^VIX"
    label: ClassVar[str] = "Yahoo ^VIX"

    def cache_token(self) -> str:
        return ""

    def fetch_vix(self, start: date | None, end: date | None) -> pd.Series:
        try:
            raw = _yahoo_download(self.ticker, start, end, timeout=self.timeout)
        except Exception as exc:  # yfinance raises many network/HTTP error types
            raise DownloadError(mask_registered(f"Yahoo download of {self.ticker} failed: {short(exc, 120)}")) from exc
        frame = _flatten_yahoo(raw, self.ticker)
        if "close" not in frame.columns:
            raise DataError(f"Yahoo data for {self.ticker} has no Close column")
        close = frame["close"]
        return _between(pd.to_numeric(close, errors="coerce").dropna().rename("vix"), start, end)


# --------------------------------------------------------------------------- Alpaca


@dataclass(frozen=True)
class AlpacaBarSource(_ObtainedNow):
    """Daily bars from Alpaca's market-data API: raw bars for prices, all-adjusted for adj_close.

    Every request has ``retry``'s timeout, and a timeout, a connection error, a 429 or a 5xx is
    retried with its backoff (a stalled or briefly failing data API must neither hang nor fail
    a trading cycle); other refusals (401, 403) end at once. The final failure is one
    :class:`DataError` line naming Alpaca and the last status. ``sleep`` is injectable for tests.
    """

    api_key: str
    api_secret: str
    feed: str = "iex"
    url_override: str | None = None
    retry: RetryPolicy = DATA_RETRY
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    name: ClassVar[str] = "alpaca"
    needs_network: ClassVar[bool] = True

    @property
    def label(self) -> str:
        return f"Alpaca daily bars ({self.feed} feed)"

    def cache_token(self) -> str:
        return self.feed

    def __repr__(self) -> str:  # never the keys
        return f"AlpacaBarSource({self.feed}, {self.url_override or 'data.alpaca.markets'})"

    def fetch(self, symbol: str, start: date | None, end: date | None) -> pd.DataFrame:
        from alpaca.data.historical import StockHistoricalDataClient

        client = StockHistoricalDataClient(self.api_key, self.api_secret, url_override=self.url_override)
        if not configure_alpaca_client(client, self.retry.timeout):  # refuse to run without timeouts
            raise DataError("alpaca-py's HTTP session is not where expected: cannot set a request timeout")
        raw = self._bars(client, symbol, start, end, "raw")
        adjusted = self._bars(client, symbol, start, end, "all")
        raw["adj_close"] = adjusted["close"].reindex(raw.index)
        return canonical_bars(raw, what=f"Alpaca {symbol}")

    def _bars(
        self, client: StockHistoricalDataClient, symbol: str, start: date | None, end: date | None, adjustment: str
    ) -> pd.DataFrame:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=TimeFrame.Day,
            start=pd.Timestamp(start or date(2016, 1, 1)).to_pydatetime(),
            end=pd.Timestamp(end).to_pydatetime() + timedelta(days=1) if end else None,
            adjustment=Adjustment(adjustment),
            feed=DataFeed(self.feed),
        )
        what = f"{symbol} bars ({adjustment})"
        try:
            # a client built without raw_data=True returns a BarSet; the stubs also allow the raw dict
            barset = call_with_retries(
                lambda: cast("BarSet", self._once(lambda: client.get_stock_bars(request))),
                self.retry,
                event="alpaca_data_retry",
                what=what,
                sleep=self.sleep,
                scrub=self._scrub,
            )
        except RetriesExhaustedError as exc:
            raise DownloadError(
                f"Alpaca bars request failed after {exc.attempts} attempts ({self.feed} feed, {what}): "
                f"{short(exc.detail, 120)}"
            ) from None
        rows = barset.data.get(symbol, [])
        if not rows:
            raise DataError(f"Alpaca returned no {symbol} bars for {start}..{end}")
        frame = pd.DataFrame(
            {
                "open": [b.open for b in rows],
                "high": [b.high for b in rows],
                "low": [b.low for b in rows],
                "close": [b.close for b in rows],
                "volume": [b.volume for b in rows],
            },
            index=to_date_index([b.timestamp for b in rows], what=f"Alpaca {symbol}"),
        )
        return _between(frame, start, end)

    def _once(self, fn: Callable[[], T]) -> T:
        """One request (alpaca-py may page through several): its result, or a mapped failure."""
        import requests
        from alpaca.common.exceptions import APIError

        try:
            return fn()
        except APIError as exc:
            status = exc.status_code
            message = self._scrub(api_message(exc))
            if is_transient_status(status):
                raise TransientError(f"HTTP {status}: {message}", retry_after(exc)) from None
            hint = " (check ALPACA_API_KEY / ALPACA_API_SECRET)" if status == 401 else ""
            raise DataError(f"Alpaca bars request failed: HTTP {status}: {message}{hint}") from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(self._scrub(transient_from_requests(exc).detail)) from None
        except Exception as exc:  # anything else alpaca-py raises: final, one line
            raise DownloadError(self._scrub(f"Alpaca bars request failed: {short(exc, 120)}")) from exc

    def _scrub(self, text: str) -> str:
        return mask_text(text, (self.api_key, self.api_secret))
