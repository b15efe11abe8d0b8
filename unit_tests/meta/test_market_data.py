"""Cache behaviour and the one door through which data enters (load_market_data)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from finrl.errors import DataError, DataValidationError, DownloadError
from finrl.meta.data import sources
from finrl.meta.data.market_data import BARS_FILE, load_market_data
from unit_tests.conftest import data_request, make_bars, write_csv

pytestmark = pytest.mark.unit


def yahoo_shaped(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """A frame shaped like yfinance.download(..., auto_adjust=False) output."""
    renamed = frame.rename(
        columns={"open": "Open", "high": "High", "low": "Low", "close": "Close", "adj_close": "Adj Close"}
    ).rename(columns={"volume": "Volume"})
    renamed = renamed[["Adj Close", "Close", "High", "Low", "Open", "Volume"]]
    renamed.columns = pd.MultiIndex.from_product([renamed.columns, [ticker]], names=["Price", "Ticker"])
    renamed.index.name = "Date"
    return renamed


@pytest.fixture
def fake_yahoo(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Serve generated bars for SPY and ^VIX through the yfinance download seam; count calls."""
    calls: list[str] = []
    bars = make_bars(400)
    vix = (
        bars[["vix"]]
        .rename(columns={"vix": "close"})
        .assign(
            open=lambda f: f.close,
            high=lambda f: f.close,
            low=lambda f: f.close,
            adj_close=lambda f: f.close,
            volume=0.0,
        )
    )

    def download(symbol: str, start: date | None, end: date | None, timeout: float) -> pd.DataFrame:
        calls.append(symbol)
        frame = vix if symbol == "^VIX" else bars.drop(columns="vix")
        return yahoo_shaped(frame, symbol)

    monkeypatch.setattr(sources, "_yahoo_download", download)
    return calls


def test_second_fetch_reads_the_cache_without_network(tmp_path: Path, fake_yahoo: list[str]) -> None:
    request = data_request(source="yahoo", start=date(2016, 1, 4), end=date(2016, 12, 30))
    first = load_market_data(request, tmp_path)
    assert fake_yahoo == ["SPY", "^VIX"]
    assert (first.directory / BARS_FILE).is_file()
    second = load_market_data(request, tmp_path)
    assert fake_yahoo == ["SPY", "^VIX"]  # no further downloads
    pd.testing.assert_frame_equal(first.bars, second.bars, check_exact=True, check_freq=False)
    assert first.fingerprint == second.fingerprint
    offline = load_market_data(replace(request, offline=True), tmp_path)
    assert offline.fingerprint == first.fingerprint


def test_a_different_range_is_a_cache_miss(tmp_path: Path, fake_yahoo: list[str]) -> None:
    load_market_data(data_request(source="yahoo", start=date(2016, 1, 4), end=date(2016, 6, 30)), tmp_path)
    load_market_data(data_request(source="yahoo", start=date(2016, 1, 4), end=date(2016, 9, 30)), tmp_path)
    assert fake_yahoo == ["SPY", "^VIX", "SPY", "^VIX"]


def test_corrupt_cache_is_fetched_again(tmp_path: Path, fake_yahoo: list[str]) -> None:
    request = data_request(source="yahoo", start=date(2016, 1, 4), end=date(2016, 12, 30))
    data = load_market_data(request, tmp_path)
    path = data.directory / BARS_FILE
    path.write_text(path.read_text().replace("2016-03-01", "2016-03-02", 1))
    again = load_market_data(request, tmp_path)
    assert fake_yahoo.count("SPY") == 2
    assert again.fingerprint == data.fingerprint


def test_offline_without_cache_names_the_options(tmp_path: Path, fake_yahoo: list[str]) -> None:
    with pytest.raises(DataError) as excinfo:
        load_market_data(data_request(source="yahoo", offline=True), tmp_path)
    message = str(excinfo.value)
    assert "--source sample" in message and "--source csv" in message
    assert fake_yahoo == []


def test_network_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object, **__: object) -> None:
        raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(sources, "_yahoo_download", fail)
    with pytest.raises(DataError, match="Yahoo download of SPY failed: Failed to resolve host"):
        load_market_data(data_request(source="yahoo"), tmp_path)


@pytest.mark.parametrize(
    ("changes", "hint"),
    [
        ({}, "(offline? use --source csv --csv FILE or --source sample)"),
        ({"flag_prefix": "live-"}, "(offline? use --live-source csv --live-csv FILE)"),
        ({"use_vix": True, "vix_source": "yahoo", "source": "sample"}, "(offline? use --vix-csv FILE or --no-vix)"),
        ({"use_vix": True, "vix_source": "yahoo", "source": "sample", "flag_prefix": "live-"},
         "(offline? use --live-vix-csv FILE)"),
    ],
)  # fmt: skip
def test_a_failed_download_ends_with_the_offline_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, object], hint: str
) -> None:
    def fail(*_: object, **__: object) -> None:
        raise ConnectionError("curl: (6) Could not resolve host: query2.finance.yahoo.com " + "x" * 400)

    monkeypatch.setattr(sources, "_yahoo_download", fail)
    request = data_request(**{"source": "yahoo", "use_vix": False, **changes})
    with pytest.raises(DownloadError) as excinfo:
        load_market_data(request, tmp_path)
    message = str(excinfo.value)
    assert message.endswith(hint) and len(message) < 300, message  # the hint survives the error line's cap


def test_yahoo_returning_nothing_ends_with_the_offline_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_yahoo_download", lambda *_, **__: pd.DataFrame())  # yfinance's way to fail
    with pytest.raises(DownloadError, match=r"no network\) \(offline\? use --source csv --csv FILE"):
        load_market_data(data_request(source="yahoo", use_vix=False), tmp_path)


def test_csv_with_vix_csv(tmp_path: Path) -> None:
    bars = make_bars(300)
    spy = write_csv(bars.drop(columns="vix"), tmp_path / "spy.csv")
    vix = write_csv(bars[["vix"]].rename(columns={"vix": "close"}), tmp_path / "vix.csv")
    data = load_market_data(data_request(source="csv", csv_path=spy, vix_csv_path=vix), tmp_path / "ds")
    pd.testing.assert_series_equal(data.bars["vix"], bars["vix"], check_freq=False)
    assert data.describe()["rows"] == 300


def test_csv_cache_follows_file_content(tmp_path: Path) -> None:
    bars = make_bars(300, vix=False)
    spy = write_csv(bars, tmp_path / "spy.csv")
    request = data_request(source="csv", csv_path=spy, use_vix=False)
    first = load_market_data(request, tmp_path / "ds")
    write_csv(make_bars(300, seed=5, vix=False), spy)
    second = load_market_data(request, tmp_path / "ds")
    assert first.fingerprint != second.fingerprint and first.directory != second.directory


def test_csv_without_vix_needs_a_choice(tmp_path: Path) -> None:
    spy = write_csv(make_bars(100, vix=False), tmp_path / "spy.csv")
    with pytest.raises(DataError, match=r"--vix-csv PATH \(or set SPY_VIX_CSV_PATH\), or --no-vix"):
        load_market_data(data_request(source="csv", csv_path=spy), tmp_path)


def test_vix_gaps_are_reported_not_zero_filled(tmp_path: Path) -> None:
    bars = make_bars(300)
    spy = write_csv(bars.drop(columns="vix"), tmp_path / "spy.csv")
    vix = write_csv(bars[["vix"]].drop(bars.index[120]).rename(columns={"vix": "close"}), tmp_path / "vix.csv")
    with pytest.raises(DataValidationError, match=f"missing vix values on {bars.index[120]:%Y-%m-%d}"):
        load_market_data(data_request(source="csv", csv_path=spy, vix_csv_path=vix), tmp_path / "ds")
    assert not list((tmp_path / "ds").glob("*/bars.csv"))  # invalid data is not cached


def test_explicit_start_before_the_sample_vix_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--start 2014-01-03 or later, or --no-vix"):
        load_market_data(data_request(source="sample", start=date(2010, 1, 4)), tmp_path)


def test_sample_defaults_to_the_vix_range_and_full_range_without_vix(tmp_path: Path) -> None:
    with_vix = load_market_data(data_request(source="sample"), tmp_path)
    assert f"{with_vix.bars.index[0]:%Y-%m-%d}" == "2014-01-03"
    assert "stand-in for SPY" in with_vix.label and "stand-in" in with_vix.describe()["label"]
    without = load_market_data(data_request(source="sample", use_vix=False), tmp_path)
    assert len(without.bars) == 5031 and "vix" not in without.bars.columns


def test_unknown_source_and_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown data source"):
        load_market_data(data_request(source="bloomberg"), tmp_path)
    with pytest.raises(DataError, match="--csv PATH"):
        load_market_data(data_request(source="csv"), tmp_path)
    with pytest.raises(DataError, match="ALPACA_API_KEY"):
        load_market_data(data_request(source="alpaca"), tmp_path)
