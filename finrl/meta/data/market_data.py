"""Fetch, join, validate and cache daily bars: the one door through which data enters.

A fetched range is cached under ``<datasets_dir>/<key>/`` (``bars.csv`` + ``metadata.json``,
written atomically, metadata last). The key names the source, symbol, range, VIX choice and a
content token (a CSV's hash, the arch version), so a second fetch of the same range needs no
network, and a changed input file is never served stale.

Only final bars enter: a daily bar is final once its session's real close (early closes
included) plus the request's ``final_delay`` has passed *when its source obtained the data* (a
network fetch: now; a file: its last write). A network fetch never asks past the last final
session, and the open-ended key names that session, so a fetch made mid-session is never reused
after the close; a partial bar a source returns anyway (a file written during the session, a
provider that ignores the end) is dropped with a warning, and data from which anything was
dropped is never cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from finrl.calendar import last_final_session, trading_sessions
from finrl.errors import DataError, DataValidationError, DownloadError, FileSystemError
from finrl.fileio import atomic_write, atomic_write_json, missing_folders, remove_empty_folders, remove_quietly
from finrl.http_retry import RetryPolicy
from finrl.log import get_logger
from finrl.meta.data.frames import fingerprint
from finrl.meta.data.request import DataRequest
from finrl.meta.data.sources import (
    AlpacaBarSource,
    BarSource,
    CsvBarSource,
    CsvVixSource,
    SampleBarSource,
    SampleVixSource,
    VixSource,
    YahooBarSource,
    YahooVixSource,
)
from finrl.meta.data.validation import ValidationReport, validate_bars
from finrl.schemas import CacheMetadata, validate_file

_Frame = TypeVar("_Frame", pd.DataFrame, pd.Series)

log = get_logger(__name__)

SOURCES = ("yahoo", "csv", "alpaca", "sample")
DEFAULT_FINAL_DELAY = timedelta(minutes=15)  # the decision delay's default: vendors settle the close by then
VIX_CLOSE_LAG = timedelta(minutes=15)  # Cboe sets VIX's close when SPX options stop: 16:15 ET (13:15 early)
_RECENT = timedelta(days=10)  # data ending earlier than this before it was obtained has no partial bar
BARS_FILE = "bars.csv"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class MarketData:
    """Validated daily bars (with ``vix`` when requested) and where they came from."""

    bars: pd.DataFrame
    symbol: str
    source: str
    label: str
    fingerprint: str
    report: ValidationReport
    directory: Path

    def describe(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "source": self.source,
            "label": self.label,
            "fingerprint": self.fingerprint,
            "rows": len(self.bars),
            "first_date": f"{self.bars.index[0]:%Y-%m-%d}",
            "last_date": f"{self.bars.index[-1]:%Y-%m-%d}",
            "columns": list(self.bars.columns),
            "warnings": list(self.report.warnings),
        }


def resolve_sources(request: DataRequest) -> tuple[BarSource, VixSource | None]:
    if request.source not in SOURCES:
        raise DataError(f"unknown data source {request.source!r}: choose one of {', '.join(SOURCES)}")
    bars: BarSource
    if request.source == "csv":
        if request.csv_path is None:
            flag = _flag(request, "csv")
            raise DataError(f"the csv source needs a file: pass {flag} PATH (or set {_env(flag)})")
        bars = CsvBarSource(Path(request.csv_path))
    elif request.source == "sample":
        bars = SampleBarSource()
    elif request.source == "alpaca":
        if request.alpaca is None:
            raise DataError("the alpaca source needs ALPACA_API_KEY and ALPACA_API_SECRET")
        creds = request.alpaca
        bars = AlpacaBarSource(
            creds.api_key, creds.api_secret, feed=creds.feed, url_override=creds.data_url, retry=_retry(request)
        )
    else:
        bars = YahooBarSource(timeout=_retry(request).read_timeout)
    return bars, (_vix_source(request) if request.use_vix else None)


def _vix_source(request: DataRequest) -> VixSource:
    chosen = request.vix_source or ("csv" if request.vix_csv_path else request.source)
    if chosen == "csv":
        if request.vix_csv_path is None:
            flag = _flag(request, "vix-csv")
            what = f"{_flag(request, 'vix-source')} csv" if request.vix_source else "the csv source has no VIX:"
            raise DataError(f"{what} needs {flag} PATH (or set {_env(flag)}){_no_vix_hint(request)}")
        return CsvVixSource(Path(request.vix_csv_path))
    if chosen == "sample":
        return SampleVixSource()
    return YahooVixSource(timeout=_retry(request).read_timeout)  # Alpaca has no index data; ^VIX from Yahoo


def _flag(request: DataRequest, name: str) -> str:
    """The command-line flag for a data field of ``request`` (the paper trader's are --live-*)."""
    return f"--{request.flag_prefix}{name}"


def _no_vix_hint(request: DataRequest) -> str:
    """The way out without VIX: a flag when training, a model trained without it when trading."""
    return ", or trade a model trained with --no-vix" if request.flag_prefix else ", or --no-vix"


def _later_start_hint(request: DataRequest, first_vix: pd.Timestamp) -> str:
    start = f"--start {first_vix:%Y-%m-%d} or later"
    return (
        f"the model's first day comes before the VIX data: retrain with {start}"
        if request.flag_prefix
        else (f"use {start}{_no_vix_hint(request)}")
    )


def _env(flag: str) -> str:
    return "SPY_" + flag.removeprefix("--").replace("-", "_").upper() + ("_PATH" if flag.endswith("csv") else "")


def _retry(request: DataRequest) -> RetryPolicy:
    """The shared HTTP policy (the trading client's) with the request's data timeout and retries."""
    return RetryPolicy.from_settings(request.data_timeout, request.data_retries)


def cache_key(request: DataRequest, bars: BarSource, vix: VixSource | None, final_day: date | None = None) -> str:
    """The cache folder's name; ``final_day`` (given when a source is on the network) is the last
    session final at fetch time: an open-ended network fetch holds those sessions, and names the last."""
    start = request.start.isoformat() if request.start else "first"
    end = _network_end(request, final_day)
    end_part = end.isoformat() if end else "last"
    vix_part = "novix"
    if vix is not None:  # the VIX token matters only when it differs from the bars' (a separate CSV)
        vix_token = vix.cache_token()
        vix_part = f"vix-{vix.name}" + (f"-{vix_token}" if vix_token and vix_token != bars.cache_token() else "")
    raw = f"{request.source}-{request.symbol}-{start}-{end_part}-{vix_part}-{bars.cache_token()}"
    return re.sub(r"[^A-Za-z0-9._-]+", "", raw.replace("^", "")).strip("-")


def _network_end(request: DataRequest, final_day: date | None) -> date | None:
    """The last day a network fetch asks for: the request's end, never past the last final session."""
    if final_day is None:
        return request.end
    return min(request.end, final_day) if request.end else final_day


def final_through(request: DataRequest, now: datetime) -> date | None:
    """The last session final at ``now`` for ``request``: its bars and, when used, its VIX."""
    lag = VIX_CLOSE_LAG if request.use_vix else timedelta(0)
    return last_final_session(now, _final_delay(request) + lag)


def _final_delay(request: DataRequest) -> timedelta:
    return request.final_delay if request.final_delay is not None else DEFAULT_FINAL_DELAY


def load_market_data(request: DataRequest, datasets_dir: Path, now: datetime | None = None) -> MarketData:
    """Validated final bars for ``request`` as of ``now`` (default: the machine's clock; the paper
    trader passes its broker's), from the cache when present, else from the source."""
    now = now or datetime.now(UTC)
    bar_source, vix_source = resolve_sources(request)
    needs_network = bar_source.needs_network or (vix_source is not None and vix_source.needs_network)
    final_day = final_through(request, now) if needs_network else None
    directory = Path(datasets_dir) / cache_key(request, bar_source, vix_source, final_day)
    cached, cacheable = _read_cache(directory), False
    if cached is not None:
        log.info("data_cache_hit", path=str(directory), rows=len(cached))
        bars = cached
    else:
        if request.offline and bar_source.needs_network:
            raise DataError(
                f"offline and no cached {request.source} data for {request.symbol} in {directory}: "
                f"use {_flag(request, 'source')} sample (offline S&P 500 stand-in) or "
                f"{_flag(request, 'source')} csv {_flag(request, 'csv')} PATH"
            )
        if request.offline and vix_source is not None and vix_source.needs_network:
            raise DataError(
                f"offline and no cached {vix_source.label} in {directory}: pass {_flag(request, 'vix-csv')} PATH"
                f"{_no_vix_hint(request)}"
            )
        bars, cacheable = _fetch(request, bar_source, vix_source, now, final_day)
    report = validate_bars(bars)
    label = bar_source.label
    if report.errors:
        raise DataValidationError(label, report.errors)
    for warning in report.warnings:
        log.warning("data_warning", source=request.source, detail=warning)
    data = MarketData(bars, request.symbol, request.source, label, fingerprint(bars), report, directory)
    if cacheable:  # not when a partial bar was seen or a provider lags: fetch again next time
        _write_cache(data)
    if request.source == "sample":
        log.warning("sample_data", note=label)
    return data


def _fetch(
    request: DataRequest, bar_source: BarSource, vix_source: VixSource | None, now: datetime, final_day: date | None
) -> tuple[pd.DataFrame, bool]:
    """The joined final bars, and whether they may be cached: nothing partial was dropped and a
    network source reached the last session it was asked for (a provider may publish late)."""
    end = _network_end(request, final_day) if bar_source.needs_network else request.end
    log.info("data_fetch", source=request.source, symbol=request.symbol, start=request.start, end=end)
    with _offline_hint(request, "bars"):
        raw = bar_source.fetch(request.symbol, request.start, end)
    bars, dropped = _final_only(raw, bar_source, request, now)
    if bars.empty and not raw.empty:  # every row after the last session that had closed (a date in the future?)
        raise DataError(
            f"{bar_source.label}: no final bar: its rows run {raw.index[0]:%Y-%m-%d}..{raw.index[-1]:%Y-%m-%d}, "
            f"after the last session that had closed when it was obtained ({bar_source.obtained_at(now):%Y-%m-%d})"
        )
    if bars.empty:
        first, last = request.start or "the first day", end or "the last"
        raise DataError(f"{bar_source.label}: no rows between {first} and {last}")
    complete = not bar_source.needs_network or _reaches(bars, end, bar_source.label)
    if vix_source is None:
        return bars, complete and not dropped
    vix_end = _network_end(request, final_day) if vix_source.needs_network else request.end
    with _offline_hint(request, "vix"):
        raw_vix = vix_source.fetch_vix(request.start, vix_end).dropna()
    vix, vix_dropped = _final_only(raw_vix, vix_source, request, now, lag=VIX_CLOSE_LAG)
    if vix.empty:
        raise DataError(f"no VIX data from {vix_source.label} between {request.start} and {vix_end}")
    complete = complete and (not vix_source.needs_network or _reaches(vix, vix_end, vix_source.label))
    if vix.index[0] > bars.index[0] and request.start is None:
        log.info("data_start_trimmed", first_vix=f"{vix.index[0]:%Y-%m-%d}", note="no start asked: begin with VIX")
        bars = bars.loc[vix.index[0] :]
    elif vix.index[0] > bars.index[0]:
        raise DataError(
            f"VIX from {vix_source.label} starts {vix.index[0]:%Y-%m-%d} but bars start {bars.index[0]:%Y-%m-%d}: "
            f"{_later_start_hint(request, vix.index[0])}"
        )
    if vix.index[-1] < bars.index[-1] and vix_dropped:  # VIX settles 15 minutes after the bars
        bars = bars.loc[: vix.index[-1]]
    elif vix.index[-1] < bars.index[-1]:  # name the stale file: the bars' validation would blame theirs
        raise DataError(
            f"VIX from {vix_source.label} ends {vix.index[-1]:%Y-%m-%d} but {bar_source.label} ends "
            f"{bars.index[-1]:%Y-%m-%d}: bring the VIX data up to date{_no_vix_hint(request)}"
        )
    vix = vix[~vix.index.duplicated(keep="last")]
    return bars.join(vix.rename("vix"), how="left"), complete and not (dropped or vix_dropped)


@contextmanager
def _offline_hint(request: DataRequest, what: str) -> Iterator[None]:
    """A failed download's line ends with the flags that need no network (the paper trader's are --live-*)."""
    try:
        yield
    except DownloadError as exc:
        if what == "vix":
            ways = f"{_flag(request, 'vix-csv')} FILE" + ("" if request.flag_prefix else " or --no-vix")
        elif request.flag_prefix:
            ways = f"{_flag(request, 'source')} csv {_flag(request, 'csv')} FILE"
        else:
            ways = "--source csv --csv FILE or --source sample"
        raise DownloadError(f"{exc} (offline? use {ways})") from exc


def _reaches(frame: pd.DataFrame | pd.Series, end: date | None, label: str) -> bool:
    """Whether a network answer holds the last session up to ``end``; a late provider is logged."""
    if end is None or frame.empty:
        return end is None
    sessions = trading_sessions(pd.Timestamp(end) - pd.Timedelta(days=10), pd.Timestamp(end))
    if not len(sessions) or frame.index[-1] >= sessions[-1]:
        return True
    log.warning(
        "data_incomplete", source=label, last=f"{frame.index[-1]:%Y-%m-%d}", expected=f"{sessions[-1]:%Y-%m-%d}",
        note="the provider has not published it yet: not cached, fetched again next time",
    )  # fmt: skip
    return False


def _final_only(
    frame: _Frame, source: BarSource | VixSource, request: DataRequest, now: datetime, lag: timedelta = timedelta(0)
) -> tuple[_Frame, bool]:
    """``frame`` without the rows that were not final when ``source`` obtained them (its session's
    close plus the delay and ``lag`` had not passed); True if any were dropped."""
    if frame.empty:
        return frame, False
    obtained = source.obtained_at(now)
    if frame.index[-1] < pd.Timestamp(obtained.date() - _RECENT):
        return frame, False  # history: nothing in it can still have been trading
    final_day = last_final_session(obtained, _final_delay(request) + lag)
    cutoff = pd.Timestamp(final_day or obtained.date() - _RECENT)
    partial = frame.index[frame.index > cutoff]
    if not len(partial):
        return frame, False
    log.warning(
        "partial_bars_dropped", source=source.label, dates=[f"{d:%Y-%m-%d}" for d in partial],
        final_through=final_day, obtained_at=obtained,
        note="a bar is final after its session's close plus the delay; not cached, fetched again next time",
    )  # fmt: skip
    return frame.drop(partial), True


def _read_cache(directory: Path) -> pd.DataFrame | None:
    meta_path, bars_path = directory / METADATA_FILE, directory / BARS_FILE
    try:
        if not (meta_path.is_file() and bars_path.is_file()):
            return None
    except OSError as exc:  # a name too long, a folder it may not enter: fetched, and caching it fails in one line
        log.warning("data_cache_unreadable", path=str(directory), error=str(exc))
        return None
    try:
        meta = validate_file(CacheMetadata, json.loads(meta_path.read_text()), meta_path)
        bars = pd.read_csv(bars_path, index_col="date", parse_dates=["date"])
        bars.index = pd.DatetimeIndex(bars.index, name="date").astype("datetime64[ns]")
        bars = bars.astype("float64")
    except (ValueError, KeyError, OSError, pd.errors.ParserError, DataError) as exc:  # refetched, never fatal
        log.warning("data_cache_unreadable", path=str(directory), error=str(exc))
        return None
    if fingerprint(bars) != meta.fingerprint:
        log.warning("data_cache_corrupt", path=str(directory), note="fingerprint mismatch, fetching again")
        return None
    return bars


def _write_cache(data: MarketData) -> None:
    """Cache the bars (metadata last, so its presence means complete). A cache that refuses writes (a
    read-only mount, as Compose gives the backtest, a full disk) only costs a fetch next time: a warning,
    and nothing half-written stays (a folder made here is removed again)."""
    made = missing_folders(data.directory)
    try:
        atomic_write(data.directory / BARS_FILE, lambda f: data.bars.to_csv(f, index_label="date"))
        atomic_write_json(data.directory / METADATA_FILE, data.describe())
    except FileSystemError as exc:
        if made:
            remove_quietly(data.directory)
            remove_empty_folders(made[1:])
        log.warning("data_cache_not_written", path=str(data.directory), error=str(exc), note="fetched again next time")
