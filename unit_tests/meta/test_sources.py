"""Data sources: yfinance output parsing, Yahoo (download stubbed), CSV, the arch sample, Alpaca (fake server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finrl.errors import DataError
from finrl.http_retry import RetryPolicy
from finrl.meta.data import sources
from finrl.meta.data.frames import BAR_COLUMNS
from finrl.meta.data.sources import (
    AlpacaBarSource,
    CsvBarSource,
    CsvVixSource,
    SampleBarSource,
    SampleVixSource,
    YahooBarSource,
    YahooVixSource,
    parse_yahoo_frame,
    read_price_csv,
)
from unit_tests.conftest import make_bars, write_csv
from unit_tests.fakes.alpaca_server import FakeAlpacaServer

pytestmark = pytest.mark.unit

YAHOO_PRICES = ("Adj Close", "Close", "High", "Low", "Open", "Volume")  # yfinance's (sorted) column order


def assert_canonical(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert (frame.dtypes == "float64").all(), frame.dtypes
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "date"
    assert frame.index.tz is None
    assert frame.index.dtype == "datetime64[ns]"
    assert (frame.index == frame.index.normalize()).all()
    assert frame.index.is_monotonic_increasing
    assert frame.index.is_unique


# --------------------------------------------------------------------------- yfinance-shaped frames


def yahoo_frame(
    tickers: tuple[str, ...] = ("SPY",),
    periods: int = 10,
    *,
    start: str = "2024-01-02",
    tz: str | None = None,
    flat: bool = False,
    auto_adjust: bool = False,
    seed: int = 1,
) -> pd.DataFrame:
    """A frame shaped like ``yfinance.download`` output (group_by='column')."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(start, periods=periods)
    index = pd.DatetimeIndex(days.tz_localize(tz) if tz else days, name="Date")
    blocks = {}
    for ticker in tickers:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, periods)))
        prices = {
            "Adj Close": close * 0.95,
            "Close": close,
            "High": close * 1.01,
            "Low": close * 0.99,
            "Open": close * 1.001,
            "Volume": rng.integers(1_000_000, 9_000_000, periods),  # int64, as yfinance gives it
        }
        if auto_adjust:
            factor = prices.pop("Adj Close") / close
            for name in ("Close", "High", "Low", "Open"):
                prices[name] = prices[name] * factor
        blocks[ticker] = pd.DataFrame(prices, index=index)
    frame = pd.concat(blocks.values(), axis=1, keys=list(blocks), names=["Ticker", "Price"])
    frame.columns = frame.columns.swaplevel(0, 1)
    frame = frame.sort_index(level=0, axis=1)
    if flat:
        assert len(tickers) == 1
        frame = frame.droplevel(1, axis=1).rename_axis(None, axis=1)
    return frame


def test_yahoo_frame_helper_matches_yfinance_layout() -> None:
    frame = yahoo_frame()
    assert frame.columns.names == ["Price", "Ticker"]
    assert list(frame.columns) == [(p, "SPY") for p in YAHOO_PRICES]
    assert frame.index.name == "Date"
    assert list(yahoo_frame(flat=True).columns) == list(YAHOO_PRICES)


@pytest.mark.parametrize("tz", [None, "America/New_York"], ids=["naive", "new-york"])
def test_parse_yahoo_multiindex(tz: str | None) -> None:
    raw = yahoo_frame(tz=tz)
    out = parse_yahoo_frame(raw, "SPY")
    assert_canonical(out)
    assert len(out) == len(raw)
    assert list(out.index) == list(pd.bdate_range("2024-01-02", periods=10))
    for price, column in zip(YAHOO_PRICES, ("adj_close", "close", "high", "low", "open", "volume"), strict=True):
        np.testing.assert_array_equal(out[column].to_numpy(), raw[(price, "SPY")].to_numpy(dtype="float64"))


def test_parse_yahoo_tz_aware_intraday_stamps_use_new_york_day() -> None:
    raw = yahoo_frame(tz="America/New_York")
    raw.index = pd.DatetimeIndex(raw.index + pd.Timedelta(hours=20), name="Date").tz_convert("UTC")  # next UTC day
    out = parse_yahoo_frame(raw, "SPY")
    assert list(out.index) == list(pd.bdate_range("2024-01-02", periods=10))


def test_parse_yahoo_flat_columns() -> None:
    raw = yahoo_frame(flat=True)
    out = parse_yahoo_frame(raw, "SPY")
    assert_canonical(out)
    np.testing.assert_array_equal(out["adj_close"].to_numpy(), raw["Adj Close"].to_numpy())
    np.testing.assert_array_equal(out["open"].to_numpy(), raw["Open"].to_numpy())


def test_parse_yahoo_sorts_ascending() -> None:
    raw = yahoo_frame().iloc[::-1]
    out = parse_yahoo_frame(raw, "SPY")
    assert out.index.is_monotonic_increasing
    assert out.loc["2024-01-02", "close"] == raw.loc["2024-01-02", ("Close", "SPY")]


@pytest.mark.parametrize("flat", [False, True], ids=["multiindex", "flat"])
def test_parse_yahoo_refuses_auto_adjusted_data(flat: bool) -> None:
    with pytest.raises(DataError, match="auto_adjust=False"):
        parse_yahoo_frame(yahoo_frame(auto_adjust=True, flat=flat), "SPY")


@pytest.mark.parametrize(
    "raw",
    [None, pd.DataFrame(), yahoo_frame().iloc[0:0]],
    ids=["none", "empty", "no-rows-with-columns"],
)
def test_parse_yahoo_nothing_is_data_error(raw: pd.DataFrame | None) -> None:
    with pytest.raises(DataError, match="Yahoo returned no data for SPY"):
        parse_yahoo_frame(raw, "SPY")


def test_parse_yahoo_picks_the_ticker_from_a_multi_ticker_frame() -> None:
    raw = yahoo_frame(("QQQ", "SPY", "IWM"))
    out = parse_yahoo_frame(raw, "SPY")
    assert_canonical(out)
    np.testing.assert_array_equal(out["close"].to_numpy(), raw[("Close", "SPY")].to_numpy())
    assert not np.array_equal(out["close"].to_numpy(), raw[("Close", "QQQ")].to_numpy())


def test_parse_yahoo_absent_ticker_in_multi_ticker_frame() -> None:
    with pytest.raises(DataError, match=r"no column for DIA.*QQQ.*SPY"):
        parse_yahoo_frame(yahoo_frame(("QQQ", "SPY")), "DIA")


def test_parse_yahoo_single_ticker_under_another_spelling() -> None:
    # yfinance upper-cases tickers: a frame for "SPY" answers a request for "spy"
    out = parse_yahoo_frame(yahoo_frame(), "spy")
    assert len(out) == 10


def test_parse_yahoo_drops_all_nan_rows() -> None:
    raw = yahoo_frame()
    raw.iloc[[2, 5]] = np.nan  # yfinance's union index leaves such rows (holidays of another ticker)
    out = parse_yahoo_frame(raw, "SPY")
    assert len(out) == 8
    assert not out.isna().any().any()
    assert raw.index[2] not in out.index


def test_parse_yahoo_multi_ticker_union_rows_dropped() -> None:
    spy = yahoo_frame(("SPY",), periods=5)
    qqq = yahoo_frame(("QQQ",), periods=6, seed=2)  # one more day than SPY
    raw = pd.concat([qqq, spy], axis=1).sort_index(level=0, axis=1)
    assert raw[("Close", "SPY")].isna().sum() == 1
    out = parse_yahoo_frame(raw, "SPY")
    assert len(out) == 5
    assert not out.isna().any().any()


# --------------------------------------------------------------------------- Yahoo sources (no network)


class DownloadStub:
    """Replaces ``sources._yahoo_download``; records its calls."""

    def __init__(self, frame: pd.DataFrame | None = None, error: Exception | None = None) -> None:
        self.frame, self.error = frame, error
        self.calls: list[tuple[str, date | None, date | None]] = []
        self.timeouts: list[float] = []

    def __call__(self, symbol: str, start: date | None, end: date | None, timeout: float) -> pd.DataFrame | None:
        self.calls.append((symbol, start, end))
        self.timeouts.append(timeout)
        if self.error is not None:
            raise self.error
        return self.frame


def test_yahoo_bar_source_limits_to_range(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = DownloadStub(yahoo_frame(periods=20))  # 2024-01-02 .. 2024-01-29
    monkeypatch.setattr(sources, "_yahoo_download", stub)
    source = YahooBarSource()
    out = source.fetch("SPY", date(2024, 1, 5), date(2024, 1, 19))
    assert stub.calls == [("SPY", date(2024, 1, 5), date(2024, 1, 19))]
    assert_canonical(out)
    assert out.index[0] == pd.Timestamp("2024-01-05")
    assert out.index[-1] == pd.Timestamp("2024-01-19")
    assert len(out) == 11
    assert source.needs_network and source.name == "yahoo" and source.cache_token() == ""
    assert "Yahoo" in source.label


def test_yahoo_bar_source_open_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_yahoo_download", DownloadStub(yahoo_frame(periods=20)))
    assert len(YahooBarSource().fetch("SPY", None, None)) == 20


def test_yahoo_bar_source_download_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_yahoo_download", DownloadStub(error=ConnectionError("name resolution failed")))
    with pytest.raises(DataError, match="Yahoo download of SPY failed: name resolution failed") as info:
        YahooBarSource().fetch("SPY", None, None)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_yahoo_bar_source_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_yahoo_download", DownloadStub(None))
    with pytest.raises(DataError, match="no data for SPY"):
        YahooBarSource().fetch("SPY", date(2024, 1, 1), date(2024, 1, 31))


def test_yahoo_vix_source(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = yahoo_frame(("^VIX",), periods=20)
    raw[("Volume", "^VIX")] = 0
    raw.loc[raw.index[8], ("Close", "^VIX")] = np.nan
    stub = DownloadStub(raw)
    monkeypatch.setattr(sources, "_yahoo_download", stub)
    source = YahooVixSource()
    vix = source.fetch_vix(date(2024, 1, 5), date(2024, 1, 19))
    assert stub.calls == [("^VIX", date(2024, 1, 5), date(2024, 1, 19))]
    assert vix.name == "vix"
    assert vix.index.name == "date"
    assert vix.dtype == "float64"
    assert not vix.isna().any()
    assert vix.index[0] == pd.Timestamp("2024-01-05") and vix.index[-1] == pd.Timestamp("2024-01-19")
    assert raw.index[8] not in vix.index  # the NaN close is dropped
    assert len(vix) == 10
    np.testing.assert_array_equal(vix.to_numpy(), raw[("Close", "^VIX")].loc[vix.index].to_numpy())


def test_yahoo_vix_source_download_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_yahoo_download", DownloadStub(error=RuntimeError("HTTP 429")))
    with pytest.raises(DataError, match=r"\^VIX") as info:
        YahooVixSource().fetch_vix(None, None)
    assert "HTTP 429" in str(info.value)


def test_yahoo_vix_source_no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_yahoo_download", DownloadStub(pd.DataFrame()))
    with pytest.raises(DataError, match=r"\^VIX"):
        YahooVixSource().fetch_vix(None, None)


@pytest.fixture
def yf_download(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """``yfinance.download`` replaced by a recorder (no network)."""
    import yfinance

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_download(*args: Any, **kwargs: Any) -> pd.DataFrame:
        calls.append((args, kwargs))
        return yahoo_frame()

    monkeypatch.setattr(yfinance, "download", fake_download)
    return calls


def test_yahoo_download_arguments(yf_download: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    YahooBarSource().fetch("SPY", date(2024, 1, 2), date(2024, 1, 12))
    [(args, kwargs)] = yf_download
    assert args == ("SPY",)
    assert kwargs["start"] == "2024-01-02"
    assert kwargs["end"] == "2024-01-13"  # yfinance's end is exclusive
    assert kwargs["auto_adjust"] is False
    assert kwargs["multi_level_index"] is True
    assert kwargs["progress"] is False


def test_yahoo_download_open_range_arguments(yf_download: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    YahooVixSource().fetch_vix(None, None)
    [(args, kwargs)] = yf_download
    assert args == ("^VIX",)
    assert kwargs["start"] == "1993-01-01"
    assert kwargs["end"] is None
    assert kwargs["auto_adjust"] is False


def test_yahoo_end_crosses_month_and_year(yf_download: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    YahooBarSource().fetch("SPY", date(2023, 12, 1), date(2023, 12, 31))
    assert yf_download[0][1]["end"] == "2024-01-01"


# --------------------------------------------------------------------------- CSV

GOOD_ROWS = [
    ("2024-01-02", 472.16, 473.67, 470.49, 472.65, 466.32, 123623700),
    ("2024-01-03", 470.43, 471.19, 468.17, 468.79, 462.51, 103585900),
    ("2024-01-04", 468.30, 470.96, 467.05, 467.28, 461.02, 84232200),
    ("2024-01-05", 467.49, 470.44, 466.43, 467.92, 461.65, 86060800),
]


def write_rows(path: Path, header: str, rows: list[tuple[Any, ...]] | None = None, *, adj: bool = True) -> Path:
    lines = [header]
    for d, o, h, low, c, a, v in GOOD_ROWS if rows is None else rows:
        lines.append(",".join(map(str, (d, o, h, low, c, a, v) if adj else (d, o, h, low, c, v))))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "header",
    [
        "Date,Open,High,Low,Close,Adj Close,Volume",
        "date,open,high,low,close,adj_close,volume",
        "DATE,OPEN,HIGH,LOW,CLOSE,ADJ CLOSE,VOLUME",
        " Date , Open,High,Low,Close,Adj-Close,Volume",
        "Timestamp,Open,High,Low,Close,AdjClose,Volume",
        "date,Open,High,Low,Close,Adjusted_Close,Volume",
    ],
)
def test_csv_bar_source_header_spellings(tmp_path: Path, header: str) -> None:
    path = write_rows(tmp_path / "spy.csv", header)
    out = CsvBarSource(path).fetch("SPY", None, None)
    assert_canonical(out)
    assert len(out) == 4
    assert out.loc["2024-01-03", "close"] == 468.79
    assert out.loc["2024-01-03", "adj_close"] == 462.51
    assert out.loc["2024-01-03", "volume"] == 103585900.0


def test_csv_bar_source_adj_close_defaults_to_close(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "spy.csv", "Date,Open,High,Low,Close,Volume", adj=False)
    out = CsvBarSource(path).fetch("SPY", None, None)
    assert_canonical(out)
    pd.testing.assert_series_equal(out["adj_close"], out["close"], check_names=False)


def test_csv_bar_source_round_trip_and_range(tmp_path: Path) -> None:
    bars = make_bars(60, vix=False)
    path = write_csv(bars.iloc[::-1], tmp_path / "bars.csv")  # newest first: sorted on read
    source = CsvBarSource(path)
    pd.testing.assert_frame_equal(source.fetch("SPY", None, None), bars[list(BAR_COLUMNS)], check_freq=False)
    window = source.fetch("SPY", date(2016, 2, 1), date(2016, 2, 29))
    assert window.index[0] == pd.Timestamp("2016-02-01") and window.index[-1] == pd.Timestamp("2016-02-29")
    assert window.index.is_monotonic_increasing
    assert source.label == "CSV file bars.csv"
    assert not source.needs_network and source.name == "csv"


def test_read_price_csv_keeps_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Date,Close,Dividends\n2024-01-03,2.0,0\n2024-01-02,1.0,0.5\n")
    frame = read_price_csv(path)
    assert list(frame.columns) == ["close", "dividends"]
    assert frame.index.name == "date"
    assert frame.loc["2024-01-02", "dividends"] == 0.5


def test_csv_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="not found") as info:
        CsvBarSource(path).fetch("SPY", None, None)
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match="not found"):
        CsvVixSource(path).fetch_vix(None, None)
    with pytest.raises(DataError, match="not found"):
        read_price_csv(tmp_path)  # a directory is not a file


@pytest.mark.parametrize("missing", ["Open", "High", "Low", "Close", "Volume"])
def test_csv_missing_required_column(tmp_path: Path, missing: str) -> None:
    columns = ["Date", "Open", "High", "Low", "Close", "Volume"]
    keep = [i for i, c in enumerate(columns) if c != missing]
    lines = [",".join(columns[i] for i in keep)]
    for d, o, h, low, c, _a, v in GOOD_ROWS:
        values = (d, o, h, low, c, v)
        lines.append(",".join(str(values[i]) for i in keep))
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"missing column.*{missing.lower()}") as info:
        CsvBarSource(path).fetch("SPY", None, None)
    assert str(path) in str(info.value)


def test_csv_missing_date_column(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("Day,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,1\n")
    with pytest.raises(DataError, match="missing column date") as info:
        CsvBarSource(path).fetch("SPY", None, None)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", ["abc", "1,2", "n/a?", "4e"], ids=["word", "comma", "junk", "exponent"])
def test_csv_non_numeric_values(tmp_path: Path, bad: str) -> None:
    rows = [list(r) for r in GOOD_ROWS]
    rows[1][4] = f'"{bad}"'
    path = write_rows(tmp_path / "bars.csv", "Date,Open,High,Low,Close,Adj Close,Volume", [tuple(r) for r in rows])
    with pytest.raises(DataError, match="non-numeric") as info:
        CsvBarSource(path).fetch("SPY", None, None)
    assert str(path) in str(info.value)


def test_csv_unparseable_dates(tmp_path: Path) -> None:
    rows = [list(r) for r in GOOD_ROWS]
    rows[2][0] = "not-a-date"
    path = write_rows(tmp_path / "bars.csv", "Date,Open,High,Low,Close,Adj Close,Volume", [tuple(r) for r in rows])
    with pytest.raises(DataError, match="unparseable dates") as info:
        CsvBarSource(path).fetch("SPY", None, None)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content", [b"", b"\n\n", b"Date,Open,High,Low,Close,Volume\n"], ids=["empty", "blank", "header"]
)
def test_csv_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        CsvBarSource(path).fetch("SPY", None, None)
    assert str(path) in str(info.value)
    with pytest.raises(DataError):
        CsvVixSource(path).fetch_vix(None, None)


@pytest.mark.parametrize(
    "content",
    [
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        b"\x1f\x8b\x08\x00" + bytes(range(255, -1, -1)) * 8,
        b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + bytes(range(256)),
        b"\x00" * 1000,
    ],
    ids=["random", "png", "gzip", "elf", "nul"],
)
def test_csv_binary_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        CsvBarSource(path).fetch("SPY", None, None)
    assert str(path) in str(info.value)
    with pytest.raises(DataError) as info:
        CsvVixSource(path).fetch_vix(None, None)
    assert str(path) in str(info.value)


def test_csv_tz_aware_dates_across_dst(tmp_path: Path) -> None:
    bars = make_bars(150, vix=False)  # 2016-01-04 .. spans the March DST change
    aware = bars.copy()
    aware.index = aware.index.tz_localize("America/New_York")
    path = write_csv(aware, tmp_path / "aware.csv")
    assert "-05:00" in path.read_text() and "-04:00" in path.read_text()
    out = CsvBarSource(path).fetch("SPY", None, None)
    assert list(out.index) == list(bars.index)


def test_csv_tz_aware_dates_one_offset(tmp_path: Path) -> None:
    bars = make_bars(20, vix=False)  # January only: one UTC offset
    aware = bars.copy()
    aware.index = aware.index.tz_localize("America/New_York")
    out = CsvBarSource(write_csv(aware, tmp_path / "aware.csv")).fetch("SPY", None, None)
    assert list(out.index) == list(bars.index)


def test_csv_cache_token_follows_content(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "spy.csv", "Date,Open,High,Low,Close,Adj Close,Volume")
    source, vix_source = CsvBarSource(path), CsvVixSource(path)
    first = source.cache_token()
    assert first == CsvBarSource(Path(str(path))).cache_token()  # deterministic
    assert len(first) == 16 and first != "missing"
    assert vix_source.cache_token() == first
    path.write_text(path.read_text().replace("468.79", "468.80"))
    assert source.cache_token() != first
    assert vix_source.cache_token() == source.cache_token()
    path.unlink()
    assert source.cache_token() == "missing"
    assert vix_source.cache_token() == "missing"


@pytest.mark.parametrize("header", ["Date,Close", "date,VIX", "Date,Open,High,Low,Close", "Date,Adj Close"])
def test_csv_vix_source_columns(tmp_path: Path, header: str) -> None:
    values = ["13.5", "14.25", "12.75"]
    width = len(header.split(",")) - 1
    lines = [header] + [f"2024-01-0{i + 2}," + ",".join([v] * width) for i, v in enumerate(values)]
    path = tmp_path / "vix.csv"
    path.write_text("\n".join(lines) + "\n")
    source = CsvVixSource(path)
    vix = source.fetch_vix(None, None)
    assert vix.name == "vix"
    assert vix.index.name == "date"
    assert vix.dtype == "float64"
    assert list(vix.index) == list(pd.date_range("2024-01-02", periods=3))
    assert list(vix) == [13.5, 14.25, 12.75]
    assert list(source.fetch_vix(date(2024, 1, 3), date(2024, 1, 3))) == [14.25]
    assert source.name == "csv" and not source.needs_network


def test_csv_vix_source_prefers_close_over_vix(tmp_path: Path) -> None:
    path = tmp_path / "vix.csv"
    path.write_text("Date,VIX,Close\n2024-01-02,99.5,13.5\n")
    assert list(CsvVixSource(path).fetch_vix(None, None)) == [13.5]


def test_csv_vix_source_non_numeric_becomes_nan(tmp_path: Path) -> None:
    path = tmp_path / "vix.csv"
    path.write_text("Date,Close\n2024-01-02,13.5\n2024-01-03,.\n2024-01-04,12.5\n")
    vix = CsvVixSource(path).fetch_vix(None, None)
    assert vix.isna().tolist() == [False, True, False]  # market_data drops them


def test_csv_vix_source_needs_a_close_column(tmp_path: Path) -> None:
    path = tmp_path / "vix.csv"
    path.write_text("Date,Open,High\n2024-01-02,13.5,14\n")
    with pytest.raises(DataError, match="close \\(or vix\\) column") as info:
        CsvVixSource(path).fetch_vix(None, None)
    assert str(path) in str(info.value)


def test_csv_vix_source_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "vix.csv"
    path.write_text("Date,Close\n2024-01-04,14.5\n2024-01-03,13.5\n2024-01-02,12.5\n")
    source = CsvVixSource(path)
    assert source.fetch_vix(None, None).index.is_monotonic_increasing
    assert list(source.fetch_vix(date(2024, 1, 2), date(2024, 1, 3))) == [12.5, 13.5]


# --------------------------------------------------------------------------- arch sample


def test_sample_bar_source_full_history() -> None:
    source = SampleBarSource()
    bars = source.fetch("SPY", None, None)
    assert_canonical(bars)
    assert len(bars) == 5031
    assert bars.index[0] == pd.Timestamp("1999-01-04")
    assert bars.index[-1] == pd.Timestamp("2018-12-31")
    assert not bars.isna().any().any()
    assert (bars["high"] >= bars["low"]).all()
    assert "stand-in" in source.label and "S&P 500" in source.label
    assert source.cache_token().startswith("arch")
    assert not source.needs_network and source.name == "sample"


def test_sample_bar_source_range() -> None:
    bars = SampleBarSource().fetch("SPY", date(2018, 1, 1), date(2018, 1, 31))
    assert bars.index[0] == pd.Timestamp("2018-01-02")
    assert bars.index[-1] == pd.Timestamp("2018-01-31")
    assert len(bars) == 21


def test_sample_bar_source_other_symbol_warns() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        bars = SampleBarSource().fetch("QQQ", date(2018, 1, 1), date(2018, 1, 31))
    assert len(bars) == 21  # still the S&P 500
    assert any(e["event"] == "sample_symbol_ignored" and e.get("symbol") == "QQQ" for e in logs)


def test_sample_vix_source() -> None:
    from arch.data import vix as arch_vix

    source = SampleVixSource()
    vix = source.fetch_vix(None, None)
    raw = arch_vix.load()["vix"]
    assert vix.name == "vix"
    assert vix.index.name == "date"
    assert vix.dtype == "float64"
    assert not vix.isna().any()
    assert raw.isna().any()  # the raw file has holiday rows that are dropped
    assert len(vix) == int(raw.notna().sum())
    assert vix.index.is_monotonic_increasing
    assert vix.index[0] == pd.Timestamp("2014-01-03")
    assert (vix > 0).all()
    assert source.cache_token() == SampleBarSource().cache_token()
    window = source.fetch_vix(date(2016, 1, 1), date(2016, 12, 31))
    assert window.index.min() >= pd.Timestamp("2016-01-01") and window.index.max() <= pd.Timestamp("2016-12-31")


# --------------------------------------------------------------------------- Alpaca (fake server)


@pytest.fixture
def alpaca_bars() -> pd.DataFrame:
    """300 NYSE sessions from 2016-01-04 (across both DST changes); adj_close = 0.9 * close."""
    return make_bars(300, vix=False)


@pytest.fixture
def alpaca_server(monkeypatch: pytest.MonkeyPatch, alpaca_bars: pd.DataFrame) -> Iterator[FakeAlpacaServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr("alpaca.common.rest.DEFAULT_RETRY_WAIT_SECONDS", 0)  # no 3 s sleeps on 429
    with FakeAlpacaServer(bars={"SPY": alpaca_bars}, max_page_size=64) as server:
        yield server


FAST = RetryPolicy(timeout=(1.0, 0.5), attempts=4, backoff=0.01, max_backoff=0.05)
"""The shared policy's shape with a short read timeout, so a stall of STALL seconds is a timeout."""
STALL = 2.0


class Sleeps:
    """Records the waits between tries instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def alpaca_source(server: FakeAlpacaServer, **kwargs: Any) -> AlpacaBarSource:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("sleep", Sleeps())
    return AlpacaBarSource(server.api_key, server.api_secret, url_override=server.base_url, **kwargs)


def test_alpaca_bars_raw_prices_and_adjusted_close(alpaca_server: FakeAlpacaServer, alpaca_bars: pd.DataFrame) -> None:
    out = alpaca_source(alpaca_server).fetch("SPY", None, None)
    assert_canonical(out)
    pd.testing.assert_index_equal(out.index, alpaca_bars.index, check_freq=False)
    for column in ("open", "high", "low", "close", "volume"):  # from adjustment=raw
        np.testing.assert_array_equal(out[column].to_numpy(), alpaca_bars[column].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(out["adj_close"].to_numpy(), alpaca_bars["adj_close"].to_numpy())
    assert not np.allclose(out["adj_close"], out["close"])


def test_alpaca_requests(alpaca_server: FakeAlpacaServer) -> None:
    alpaca_source(alpaca_server, feed="sip").fetch("SPY", date(2016, 3, 1), date(2016, 3, 31))
    requests = alpaca_server.requests_to("/v2/stocks/bars")
    assert requests == alpaca_server.requests
    assert [r.param("adjustment") for r in requests] == ["raw", "all"]  # 22 bars: one page each
    for r in requests:
        assert r.method == "GET"
        assert r.param("symbols") == "SPY"
        assert r.param("timeframe") == "1Day"
        assert r.param("feed") == "sip"
        assert pd.Timestamp(r.param("start")) == pd.Timestamp("2016-03-01", tz="UTC")
        assert pd.Timestamp(r.param("end")) == pd.Timestamp("2016-04-01", tz="UTC")
        assert r.header("APCA-API-KEY-ID") == alpaca_server.api_key
        assert r.header("APCA-API-SECRET-KEY") == alpaca_server.api_secret


def test_alpaca_default_feed_and_start(alpaca_server: FakeAlpacaServer) -> None:
    source = alpaca_source(alpaca_server)
    source.fetch("SPY", None, None)
    first = alpaca_server.requests[0]
    assert first.param("feed") == "iex"
    assert pd.Timestamp(first.param("start")) == pd.Timestamp("2016-01-01", tz="UTC")
    assert first.param("end") is None
    assert source.label == "Alpaca daily bars (iex feed)"
    assert source.cache_token() == "iex"
    assert source.needs_network and source.name == "alpaca"


def test_alpaca_range_is_inclusive_new_york_days(alpaca_server: FakeAlpacaServer, alpaca_bars: pd.DataFrame) -> None:
    # 2016-04-01 and 2016-07-01 are sessions; the July bar is stamped 04:00Z (EDT), March's 05:00Z (EST)
    out = alpaca_source(alpaca_server).fetch("SPY", date(2016, 3, 1), date(2016, 7, 1))
    expected = alpaca_bars.loc["2016-03-01":"2016-07-01"].index
    pd.testing.assert_index_equal(out.index, expected, check_freq=False)
    assert out.index[0] == pd.Timestamp("2016-03-01") and out.index[-1] == pd.Timestamp("2016-07-01")


def test_alpaca_dates_are_new_york_calendar_days(alpaca_server: FakeAlpacaServer) -> None:
    day = pd.Timestamp("2016-07-01")  # summer: midnight New York is 04:00 UTC
    alpaca_server.set_bars("SPY", make_bars(300, vix=False).loc[[day, pd.Timestamp("2016-01-04")]])
    out = alpaca_source(alpaca_server).fetch("SPY", None, None)
    assert list(out.index) == [pd.Timestamp("2016-01-04"), day]


def test_alpaca_pagination(alpaca_server: FakeAlpacaServer, alpaca_bars: pd.DataFrame) -> None:
    out = alpaca_source(alpaca_server).fetch("SPY", None, None)
    assert len(out) == 300
    pages = -(-300 // alpaca_server.max_page_size)
    requests = alpaca_server.requests
    assert len(requests) == 2 * pages
    for adjustment, group in (("raw", requests[:pages]), ("all", requests[pages:])):
        assert {r.param("adjustment") for r in group} == {adjustment}
        assert group[0].param("page_token") is None
        assert all(r.param("page_token") for r in group[1:])
        assert len({r.param("page_token") for r in group[1:]}) == pages - 1
    assert out.index.is_unique


def test_alpaca_wrong_keys(alpaca_server: FakeAlpacaServer) -> None:
    source = AlpacaBarSource("wrong-key", "wrong-secret", url_override=alpaca_server.base_url, retry=FAST)
    with pytest.raises(DataError, match=r"HTTP 401.*ALPACA_API_KEY"):
        source.fetch("SPY", None, None)
    assert len(alpaca_server.requests) == 1  # 401 is not retried
    assert alpaca_server.requests[0].header("APCA-API-KEY-ID") == "wrong-key"


def test_alpaca_empty_response(alpaca_server: FakeAlpacaServer) -> None:
    with pytest.raises(DataError, match="no SPY bars"):
        alpaca_source(alpaca_server).fetch("SPY", date(2020, 1, 1), date(2020, 1, 31))
    with pytest.raises(DataError, match="no QQQ bars"):
        alpaca_source(alpaca_server).fetch("QQQ", None, None)


def test_alpaca_rate_limit_is_retried(alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.fail_next(2, status=429, body={"message": "too many requests."})
    out = alpaca_source(alpaca_server).fetch("SPY", date(2016, 3, 1), date(2016, 3, 31))
    assert len(out) == 22
    assert len(alpaca_server.requests) == 4  # two refused, then raw and all


def test_alpaca_rate_limit_exhausted(alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.fail_next(10, status=429, body={"message": "too many requests."})
    with pytest.raises(DataError, match="HTTP 429"):
        alpaca_source(alpaca_server).fetch("SPY", None, None)


def test_alpaca_unreachable() -> None:
    with FakeAlpacaServer() as server:
        url = server.base_url
    with pytest.raises(DataError, match="Alpaca bars request failed"):
        AlpacaBarSource("k", "s", url_override=url, retry=FAST, sleep=Sleeps()).fetch("SPY", None, None)


def test_alpaca_forbidden_keeps_alpacas_message(alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.fail_next(1, status=403, body={"message": "subscription does not permit querying recent SIP data"})
    with pytest.raises(DataError, match="subscription does not permit"):
        alpaca_source(alpaca_server, feed="sip").fetch("SPY", None, None)
    assert len(alpaca_server.requests) == 1  # a refusal is not retried


# --------------------------------------------------------------------------- data timeouts and retries


def test_alpaca_data_stall_is_cut_at_the_timeout_and_retried(alpaca_server: FakeAlpacaServer) -> None:
    from structlog.testing import capture_logs

    alpaca_server.timeout_next(1, seconds=STALL, path="/v2/stocks/bars")
    sleeps = Sleeps()
    with capture_logs() as logs:
        out = alpaca_source(alpaca_server, sleep=sleeps).fetch("SPY", date(2016, 3, 1), date(2016, 3, 31))
    assert len(out) == 22
    # the stalled request, then raw and all: the stall's late 504 was never waited for
    assert [r.param("adjustment") for r in alpaca_server.requests] == ["raw", "raw", "all"]
    retries = [e for e in logs if e["event"] == "alpaca_data_retry"]
    assert len(retries) == 1 and "timed out" in retries[0]["error"]
    assert sleeps.waits == [FAST.delay(1)]


def test_alpaca_data_transient_500_is_retried(alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.fail_next(2, status=500)
    sleeps = Sleeps()
    out = alpaca_source(alpaca_server, sleep=sleeps).fetch("SPY", date(2016, 3, 1), date(2016, 3, 31))
    assert len(out) == 22
    assert len(alpaca_server.requests) == 4  # two 500s, then raw and all
    assert sleeps.waits == [FAST.delay(1), FAST.delay(2)]  # backoff doubles


def test_alpaca_data_permanent_500_ends_in_one_line(alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.fail_next(100, status=500, body={"message": "internal server error"})
    sleeps = Sleeps()
    with pytest.raises(DataError) as info:
        alpaca_source(alpaca_server, sleep=sleeps).fetch("SPY", None, None)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Alpaca bars request failed after 4 attempts")
    assert "HTTP 500: internal server error" in message and "iex feed" in message
    assert alpaca_server.api_key not in message and alpaca_server.api_secret not in message
    assert len(alpaca_server.requests) == FAST.attempts  # bounded
    assert len(sleeps.waits) == FAST.attempts - 1  # no wait after the last try


def test_alpaca_data_429_honours_retry_after(alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.fail_next(1, status=429, headers={"Retry-After": "3"})
    sleeps = Sleeps()
    alpaca_source(alpaca_server, sleep=sleeps).fetch("SPY", date(2016, 3, 1), date(2016, 3, 31))
    assert sleeps.waits == [3.0]
    assert len(alpaca_server.requests) == 3


def test_alpaca_data_auth_error_is_not_retried(alpaca_server: FakeAlpacaServer) -> None:
    sleeps = Sleeps()
    source = AlpacaBarSource("bad-key", "bad-secret", url_override=alpaca_server.base_url, retry=FAST, sleep=sleeps)
    with pytest.raises(DataError, match="HTTP 401") as info:
        source.fetch("SPY", None, None)
    assert "bad-secret" not in str(info.value) and "bad-secret" not in repr(source)
    assert len(alpaca_server.requests) == 1 and sleeps.waits == []


def test_alpaca_data_uses_the_trading_clients_policy() -> None:
    from finrl.trade.alpaca_broker import DEFAULT_TIMEOUT

    assert AlpacaBarSource("k", "s").retry == sources.DATA_RETRY == RetryPolicy()
    assert sources.DATA_RETRY.timeout == DEFAULT_TIMEOUT


def test_yahoo_download_has_the_data_timeout(yf_download: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    # only the wrapper: yfinance talks to Yahoo through its own session, not to a local server
    YahooBarSource().fetch("SPY", date(2024, 1, 2), date(2024, 1, 12))
    assert yf_download[0][1]["timeout"] == sources.DATA_RETRY.read_timeout


def test_data_timeout_and_retries_settings_reach_every_network_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from finrl.applications.spy_rl_trading.settings import Settings
    from finrl.meta.data.market_data import resolve_sources

    defaults = Settings()
    policy = sources.DATA_RETRY  # the trading client's policy: one set of defaults
    assert (defaults.data_timeout, defaults.data_retries + 1) == (policy.read_timeout, policy.attempts)
    settings = Settings(
        data_source="alpaca",
        data_timeout=2.5,
        data_retries=1,
        alpaca_api_key="k",
        alpaca_api_secret="s",
    )
    bars, vix = resolve_sources(settings.data_request())
    assert isinstance(bars, AlpacaBarSource) and isinstance(vix, YahooVixSource)
    assert bars.retry.timeout == (2.5, 2.5) and bars.retry.attempts == 2
    assert vix.timeout == 2.5
    yahoo, _ = resolve_sources(Settings(data_source="yahoo", data_timeout=40.0).data_request())
    assert isinstance(yahoo, YahooBarSource) and yahoo.timeout == 40.0
    stub = DownloadStub(yahoo_frame(periods=20))
    monkeypatch.setattr(sources, "_yahoo_download", stub)
    yahoo.fetch("SPY", None, None)
    assert stub.timeouts == [40.0]


def test_retry_policy_from_settings() -> None:
    assert RetryPolicy.from_settings(None, None) == RetryPolicy()
    assert RetryPolicy.from_settings(30.0, None) == RetryPolicy(timeout=(5.0, 30.0))  # connect stays short
    assert RetryPolicy.from_settings(1.0, 0) == RetryPolicy(timeout=(1.0, 1.0), attempts=1)


def test_retry_policy_backoff_and_bounds() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=2.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    assert policy.delay(1, retry_after=5.0) == 5.0
    assert policy.delay(1, retry_after=3600.0) == 30.0  # capped: one answer cannot park a cycle
    assert RetryPolicy(timeout=7.0).read_timeout == 7.0
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


# --------------------------------------------------------------------------- the fake itself


def test_fake_alpaca_server_wire_format(alpaca_server: FakeAlpacaServer) -> None:
    import requests

    headers = {"APCA-API-KEY-ID": alpaca_server.api_key, "APCA-API-SECRET-KEY": alpaca_server.api_secret}
    url = f"{alpaca_server.base_url}/v2/stocks/bars"
    query = {"symbols": "SPY", "timeframe": "1Day", "start": "2016-06-30", "end": "2016-07-02T00:00:00Z"}
    raw = requests.get(url, params={**query, "adjustment": "raw"}, headers=headers, timeout=5).json()
    adjusted = requests.get(url, params={**query, "adjustment": "all"}, headers=headers, timeout=5).json()
    assert raw["next_page_token"] is None
    assert [b["t"] for b in raw["bars"]["SPY"]] == ["2016-06-30T04:00:00Z", "2016-07-01T04:00:00Z"]
    assert set(raw["bars"]["SPY"][0]) == {"t", "o", "h", "l", "c", "v", "n", "vw"}
    assert adjusted["bars"]["SPY"][0]["c"] == pytest.approx(0.9 * raw["bars"]["SPY"][0]["c"])
    assert adjusted["bars"]["SPY"][0]["v"] == raw["bars"]["SPY"][0]["v"]

    limited = requests.get(url, params={**query, "adjustment": "raw", "limit": 1}, headers=headers, timeout=5).json()
    assert len(limited["bars"]["SPY"]) == 1 and limited["next_page_token"]
    following = requests.get(
        url,
        params={**query, "adjustment": "raw", "limit": 1, "page_token": limited["next_page_token"]},
        headers=headers,
        timeout=5,
    ).json()
    assert following["bars"]["SPY"] == raw["bars"]["SPY"][1:] and following["next_page_token"] is None
    bad_token = requests.get(url, params={**query, "page_token": "garbage"}, headers=headers, timeout=5)
    assert bad_token.status_code == 422

    denied = requests.get(url, params=query, headers={"APCA-API-KEY-ID": "x"}, timeout=5)
    assert denied.status_code == 401 and denied.json() == {"message": "unauthorized."}
    assert requests.get(f"{alpaca_server.base_url}/v2/account", headers=headers, timeout=5).status_code == 404


def test_fake_alpaca_server_custom_route() -> None:
    import requests

    from unit_tests.fakes.alpaca_server import FakeResponse, RecordedRequest

    def order(request: RecordedRequest, params: dict[str, str]) -> FakeResponse:
        return FakeResponse(200, {"id": params["order_id"], "echo": request.json()})

    with FakeAlpacaServer(api_key="k", api_secret="s") as server:
        server.route("PATCH", "/v2/orders/{order_id}", order)
        headers = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}
        answer = requests.patch(f"{server.base_url}/v2/orders/abc-1", json={"qty": "2"}, headers=headers, timeout=5)
        assert answer.json() == {"id": "abc-1", "echo": {"qty": "2"}}
        assert requests.get(f"{server.base_url}/v2/orders/abc-1", headers=headers, timeout=5).status_code == 405
        server.fail_next(1, status=503, path="/v2/orders/abc-1")
        assert requests.get(f"{server.base_url}/v2/clock", headers=headers, timeout=5).status_code == 404
        failed = requests.patch(f"{server.base_url}/v2/orders/abc-1", json={}, headers=headers, timeout=5)
        assert failed.status_code == 503
        assert json.loads(failed.text)["message"]
        assert [r.path for r in server.requests] == [
            "/v2/orders/abc-1",
            "/v2/orders/abc-1",
            "/v2/clock",
            "/v2/orders/abc-1",
        ]
