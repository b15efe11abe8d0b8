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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from finrl.calendar import last_final_session
from finrl.errors import DataError, DataValidationError
from finrl.fileio import atomic_write, atomic_write_json
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

_Frame = TypeVar("_Frame", pd.DataFrame, pd.Series)

log = get_logger(__name__)

SOURCES = ("yahoo", "csv", "alpaca", "sample")
DEFAULT_FINAL_DELAY = timedelta(minutes=15)  # the decision delay's default: vendors settle the close by then
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
            raise DataError(f"the csv source has no VIX: pass {flag} PATH (or set {_env(flag)}), or --no-vix")
        return CsvVixSource(Path(request.vix_csv_path))
    if chosen == "sample":
        return SampleVixSource()
    return YahooVixSource(timeout=_retry(request).read_timeout)  # Alpaca has no index data; ^VIX from Yahoo


def _flag(request: DataRequest, name: str) -> str:
    """The command-line flag for a data field of ``request`` (the paper trader's are --live-*)."""
    return f"--{request.flag_prefix}{name}"


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


def _final_delay(request: DataRequest) -> timedelta:
    return request.final_delay if request.final_delay is not None else DEFAULT_FINAL_DELAY


def load_market_data(request: DataRequest, datasets_dir: Path, now: datetime | None = None) -> MarketData:
    """Validated final bars for ``request`` as of ``now`` (default: the machine's clock; the paper
    trader passes its broker's), from the cache when present, else from the source."""
    now = now or datetime.now(UTC)
    bar_source, vix_source = resolve_sources(request)
    needs_network = bar_source.needs_network or (vix_source is not None and vix_source.needs_network)
    final_day = last_final_session(now, _final_delay(request)) if needs_network else None
    directory = Path(datasets_dir) / cache_key(request, bar_source, vix_source, final_day)
    cached, dropped = _read_cache(directory), False
    if cached is not None:
        log.info("data_cache_hit", path=str(directory), rows=len(cached))
        bars = cached
    else:
        if request.offline and (bar_source.needs_network or (vix_source and vix_source.needs_network)):
            raise DataError(
                f"offline and no cached {request.source} data for {request.symbol} in {directory}: "
                f"use {_flag(request, 'source')} sample (offline S&P 500 stand-in) or "
                f"{_flag(request, 'source')} csv {_flag(request, 'csv')} PATH"
            )
        bars, dropped = _fetch(request, bar_source, vix_source, now, final_day)
    report = validate_bars(bars)
    label = bar_source.label
    if report.errors:
        raise DataValidationError(label, report.errors)
    for warning in report.warnings:
        log.warning("data_warning", source=request.source, detail=warning)
    data = MarketData(bars, request.symbol, request.source, label, fingerprint(bars), report, directory)
    if cached is None and not dropped:  # a partial bar was seen: fetch again next time
        _write_cache(data)
    if request.source == "sample":
        log.warning("sample_data", note=label)
    return data


def _fetch(
    request: DataRequest, bar_source: BarSource, vix_source: VixSource | None, now: datetime, final_day: date | None
) -> tuple[pd.DataFrame, bool]:
    """The joined final bars, and whether a partial bar (or VIX value) was dropped."""
    end = _network_end(request, final_day) if bar_source.needs_network else request.end
    log.info("data_fetch", source=request.source, symbol=request.symbol, start=request.start, end=end)
    bars, dropped = _final_only(bar_source.fetch(request.symbol, request.start, end), bar_source, request, now)
    if bars.empty:
        raise DataError(f"{bar_source.label}: no rows between {request.start} and {end}")
    if vix_source is None:
        return bars, dropped
    vix_end = _network_end(request, final_day) if vix_source.needs_network else request.end
    vix, vix_dropped = _final_only(vix_source.fetch_vix(request.start, vix_end).dropna(), vix_source, request, now)
    if vix.empty:
        raise DataError(f"no VIX data from {vix_source.label} between {request.start} and {vix_end}")
    if vix.index[0] > bars.index[0] and request.start is None:
        log.info("data_start_trimmed", first_vix=f"{vix.index[0]:%Y-%m-%d}", note="no start asked: begin with VIX")
        bars = bars.loc[vix.index[0] :]
    elif vix.index[0] > bars.index[0]:
        raise DataError(
            f"VIX from {vix_source.label} starts {vix.index[0]:%Y-%m-%d} but bars start {bars.index[0]:%Y-%m-%d}: "
            f"use --start {vix.index[0]:%Y-%m-%d} or later, or --no-vix"
        )
    if vix.index[-1] < bars.index[-1]:  # name the stale file: the bars' validation would blame theirs
        raise DataError(
            f"VIX from {vix_source.label} ends {vix.index[-1]:%Y-%m-%d} but {bar_source.label} ends "
            f"{bars.index[-1]:%Y-%m-%d}: bring the VIX data up to date, or use --no-vix"
        )
    vix = vix[~vix.index.duplicated(keep="last")]
    return bars.join(vix.rename("vix"), how="left"), dropped or vix_dropped


def _final_only(
    frame: _Frame, source: BarSource | VixSource, request: DataRequest, now: datetime
) -> tuple[_Frame, bool]:
    """``frame`` without the rows that were not final when ``source`` obtained them; True if any."""
    if frame.empty:
        return frame, False
    obtained = source.obtained_at(now)
    if frame.index[-1] < pd.Timestamp(obtained.date() - _RECENT):
        return frame, False  # history: nothing in it can still have been trading
    final_day = last_final_session(obtained, _final_delay(request))
    cutoff = pd.Timestamp(final_day or obtained.date() - _RECENT)
    partial = frame.index[frame.index > cutoff]
    if not len(partial):
        return frame, False
    log.warning(
        "partial_bars_dropped", source=source.name, dates=[f"{d:%Y-%m-%d}" for d in partial],
        final_through=str(final_day), obtained_at=obtained.isoformat(),
        note="a bar is final after its session's close plus the delay; not cached, fetched again next time",
    )  # fmt: skip
    return frame.drop(partial), True


def _read_cache(directory: Path) -> pd.DataFrame | None:
    meta_path, bars_path = directory / METADATA_FILE, directory / BARS_FILE
    if not (meta_path.is_file() and bars_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        bars = pd.read_csv(bars_path, index_col="date", parse_dates=["date"])
        bars.index = pd.DatetimeIndex(bars.index, name="date").astype("datetime64[ns]")
        bars = bars.astype("float64")
    except (ValueError, KeyError, OSError, pd.errors.ParserError) as exc:
        log.warning("data_cache_unreadable", path=str(directory), error=str(exc))
        return None
    if fingerprint(bars) != meta.get("fingerprint"):
        log.warning("data_cache_corrupt", path=str(directory), note="fingerprint mismatch, fetching again")
        return None
    return bars


def _write_cache(data: MarketData) -> None:
    atomic_write(data.directory / BARS_FILE, lambda f: data.bars.to_csv(f, index_label="date"))
    atomic_write_json(data.directory / METADATA_FILE, data.describe())
