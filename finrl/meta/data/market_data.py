"""Fetch, join, validate and cache daily bars: the one door through which data enters.

A fetched range is cached under ``<datasets_dir>/<key>/`` (``bars.csv`` + ``metadata.json``,
written atomically, metadata last). The key names the source, symbol, range, VIX choice and a
content token (a CSV's hash, the arch version), so a second fetch of the same range needs no
network, and a changed input file is never served stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

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

log = get_logger(__name__)

SOURCES = ("yahoo", "csv", "alpaca", "sample")
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
            raise DataError("the csv source needs a file: pass --csv PATH (or set SPY_CSV_PATH)")
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
    if request.vix_csv_path is not None:
        return CsvVixSource(Path(request.vix_csv_path))
    if request.source == "sample":
        return SampleVixSource()
    if request.source == "csv":
        raise DataError("the csv source has no VIX: pass --vix-csv PATH, or --no-vix to train without it")
    return YahooVixSource(timeout=_retry(request).read_timeout)  # Alpaca has no index data; ^VIX from Yahoo


def _retry(request: DataRequest) -> RetryPolicy:
    """The shared HTTP policy (the trading client's) with the request's data timeout and retries."""
    return RetryPolicy.from_settings(request.data_timeout, request.data_retries)


def cache_key(request: DataRequest, bars: BarSource, vix: VixSource | None) -> str:
    start = request.start.isoformat() if request.start else "first"
    # An open-ended network fetch is only reusable on the day it was made.
    end = request.end or (date.today() if bars.needs_network else None)
    end_part = end.isoformat() if end else "last"
    vix_part = "novix"
    if vix is not None:  # the VIX token matters only when it differs from the bars' (a separate CSV)
        vix_token = vix.cache_token()
        vix_part = f"vix-{vix.name}" + (f"-{vix_token}" if vix_token and vix_token != bars.cache_token() else "")
    raw = f"{request.source}-{request.symbol}-{start}-{end_part}-{vix_part}-{bars.cache_token()}"
    return re.sub(r"[^A-Za-z0-9._-]+", "", raw.replace("^", "")).strip("-")


def load_market_data(request: DataRequest, datasets_dir: Path) -> MarketData:
    """Validated bars for ``request``, from the cache when present, else from the source."""
    bar_source, vix_source = resolve_sources(request)
    directory = Path(datasets_dir) / cache_key(request, bar_source, vix_source)
    cached = _read_cache(directory)
    if cached is not None:
        log.info("data_cache_hit", path=str(directory), rows=len(cached))
        bars = cached
    else:
        if request.offline and (bar_source.needs_network or (vix_source and vix_source.needs_network)):
            raise DataError(
                f"offline and no cached {request.source} data for {request.symbol} in {directory}: "
                "use --source sample (offline S&P 500 stand-in) or --source csv --csv PATH"
            )
        bars = _fetch(request, bar_source, vix_source)
    report = validate_bars(bars)
    label = bar_source.label
    if report.errors:
        raise DataValidationError(label, report.errors)
    for warning in report.warnings:
        log.warning("data_warning", source=request.source, detail=warning)
    data = MarketData(bars, request.symbol, request.source, label, fingerprint(bars), report, directory)
    if cached is None:
        _write_cache(data)
    if request.source == "sample":
        log.warning("sample_data", note=label)
    return data


def _fetch(request: DataRequest, bar_source: BarSource, vix_source: VixSource | None) -> pd.DataFrame:
    log.info("data_fetch", source=request.source, symbol=request.symbol, start=request.start, end=request.end)
    bars = bar_source.fetch(request.symbol, request.start, request.end)
    if bars.empty:
        raise DataError(f"{bar_source.label}: no rows between {request.start} and {request.end}")
    if vix_source is None:
        return bars
    vix = vix_source.fetch_vix(request.start, request.end).dropna()
    if vix.empty:
        raise DataError(f"no VIX data from {vix_source.name} between {request.start} and {request.end}")
    if vix.index[0] > bars.index[0] and request.start is None:
        log.info("data_start_trimmed", first_vix=f"{vix.index[0]:%Y-%m-%d}", note="no start asked: begin with VIX")
        bars = bars.loc[vix.index[0] :]
    elif vix.index[0] > bars.index[0]:
        raise DataError(
            f"VIX from {vix_source.name} starts {vix.index[0]:%Y-%m-%d} but bars start {bars.index[0]:%Y-%m-%d}: "
            f"use --start {vix.index[0]:%Y-%m-%d} or later, or --no-vix"
        )
    vix = vix[~vix.index.duplicated(keep="last")]
    return bars.join(vix.rename("vix"), how="left")


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
