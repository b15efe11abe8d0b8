"""Only final bars enter (issue 12, failure 1): a bar counts once its session's close (early closes
included) plus the delay had passed when its source obtained it, and nothing partial is cached."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from finrl.calendar import last_final_session, trading_sessions
from finrl.errors import DataError
from finrl.meta.data import sources
from finrl.meta.data.market_data import BARS_FILE, load_market_data
from unit_tests.conftest import data_request, make_bars, write_csv
from unit_tests.meta.test_market_data import yahoo_shaped

pytestmark = pytest.mark.unit

NEW_YORK = ZoneInfo("America/New_York")
NOON = datetime(2024, 12, 26, 12, 0, tzinfo=NEW_YORK)  # mid-session
EVENING = datetime(2024, 12, 26, 19, 30, tzinfo=NEW_YORK)
PARTIAL_CLOSE, TRUE_CLOSE = 600.88, 601.34  # the numbers
DELAY = timedelta(minutes=15)


def bars_until(last: str, close: float) -> pd.DataFrame:
    """Random-walk bars on NYSE sessions ending ``last``, its bar closing at ``close``."""
    periods = len(trading_sessions(pd.Timestamp("2024-01-02"), pd.Timestamp(last)))
    frame = make_bars(periods, start="2024-01-02")
    frame *= [600 / frame["close"].iloc[-1]] * 5 + [1, 1]  # price columns near SPY's level
    adjustment = frame["adj_close"].iloc[-2] / frame["close"].iloc[-2]  # no dividend on the last day
    frame.iloc[-1, frame.columns.get_indexer(["open", "high", "low", "close", "adj_close"])] = [
        599.0, max(close, 602.0), 598.0, close, close * adjustment,
    ]  # fmt: skip
    return frame


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 12, 24, 13, 14, tzinfo=NEW_YORK), date(2024, 12, 23)),  # early close 13:00 + 15 min
        (datetime(2024, 12, 24, 13, 15, tzinfo=NEW_YORK), date(2024, 12, 24)),
        (NOON, date(2024, 12, 24)),  # Christmas: no session; the 26th is still trading
        (datetime(2024, 12, 26, 16, 14, tzinfo=NEW_YORK), date(2024, 12, 24)),
        (datetime(2024, 12, 26, 16, 15, tzinfo=NEW_YORK), date(2024, 12, 26)),
        (datetime(2024, 12, 28, 10, 0, tzinfo=NEW_YORK), date(2024, 12, 27)),  # a Saturday
    ],
)
def test_a_bar_is_final_after_its_real_close_plus_the_delay(moment: datetime, expected: date) -> None:
    assert last_final_session(moment, DELAY) == expected


@pytest.fixture
def yahoo_serving(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A Yahoo that ignores the end asked for and serves whatever ``state['bars']`` holds."""
    state: dict[str, object] = {"bars": bars_until("2024-12-26", PARTIAL_CLOSE), "ends": []}

    def download(symbol: str, start: date | None, end: date | None, timeout: float) -> pd.DataFrame:
        frame = state["bars"]
        assert isinstance(frame, pd.DataFrame)
        state["ends"].append(end)  # type: ignore[attr-defined]
        served = frame[["vix"]].rename(columns={"vix": "close"}) if symbol == "^VIX" else frame.drop(columns="vix")
        if symbol == "^VIX":
            served = served.assign(open=served.close, high=served.close, low=served.close, adj_close=served.close,
                                   volume=0.0)  # fmt: skip
        return yahoo_shaped(served, symbol)

    monkeypatch.setattr(sources, "_yahoo_download", download)
    return state


def test_a_partial_bar_fetched_mid_session_is_dropped_and_never_cached(
    tmp_path: Path, yahoo_serving: dict[str, object]
) -> None:
    request = data_request(source="yahoo", start=date(2024, 1, 2), final_delay=DELAY)
    noon = load_market_data(request, tmp_path, now=NOON)
    assert noon.bars.index[-1] == pd.Timestamp("2024-12-24")  # the 26th's partial bar is gone
    assert PARTIAL_CLOSE not in noon.bars["close"].to_numpy()
    assert yahoo_serving["ends"] == [date(2024, 12, 24), date(2024, 12, 24)]  # never asked past the final session
    # the key names the last final session: a noon fetch cannot be reused after the close
    assert all("2024-12-24" in p.name for p in tmp_path.iterdir())
    assert not any(PARTIAL_CLOSE in pd.read_csv(p)["close"].to_numpy() for p in tmp_path.rglob(BARS_FILE))

    yahoo_serving["bars"] = bars_until("2024-12-26", TRUE_CLOSE)  # the provider publishes the final bar
    evening = load_market_data(request, tmp_path, now=EVENING)
    assert evening.bars.index[-1] == pd.Timestamp("2024-12-26")
    assert evening.bars["close"].iloc[-1] == TRUE_CLOSE
    assert yahoo_serving["ends"][-2:] == [date(2024, 12, 26), date(2024, 12, 26)]  # type: ignore[index]
    again = load_market_data(request, tmp_path, now=EVENING + timedelta(hours=1))  # final data is cached
    assert len(yahoo_serving["ends"]) == 4 and again.bars["close"].iloc[-1] == TRUE_CLOSE  # type: ignore[arg-type]


def test_a_provider_that_publishes_late_is_asked_again_not_served_from_the_cache(
    tmp_path: Path, yahoo_serving: dict[str, object]
) -> None:
    request = data_request(source="yahoo", start=date(2024, 1, 2), final_delay=DELAY)
    yahoo_serving["bars"] = bars_until("2024-12-24", TRUE_CLOSE)  # the 26th not published at 19:30
    late = load_market_data(request, tmp_path, now=EVENING)
    assert late.bars.index[-1] == pd.Timestamp("2024-12-24")
    assert not any(tmp_path.rglob(BARS_FILE))  # an incomplete answer is never cached
    yahoo_serving["bars"] = bars_until("2024-12-26", TRUE_CLOSE)
    published = load_market_data(request, tmp_path, now=EVENING + timedelta(minutes=10))
    assert published.bars.index[-1] == pd.Timestamp("2024-12-26") and any(tmp_path.rglob(BARS_FILE))


def test_vix_settles_fifteen_minutes_after_the_stock_close(tmp_path: Path, yahoo_serving: dict[str, object]) -> None:
    """SPX options (and so VIX) trade until 16:15 ET: a session with VIX is final 15 minutes later."""
    yahoo_serving["bars"] = bars_until("2024-12-26", TRUE_CLOSE)
    request = data_request(source="yahoo", start=date(2024, 1, 2), final_delay=DELAY)
    bars_only = load_market_data(
        replace(request, use_vix=False), tmp_path, now=datetime(2024, 12, 26, 16, 20, tzinfo=NEW_YORK)
    )
    with_vix = load_market_data(request, tmp_path, now=datetime(2024, 12, 26, 16, 20, tzinfo=NEW_YORK))
    assert bars_only.bars.index[-1] == pd.Timestamp("2024-12-26") and with_vix.bars.index[-1] == pd.Timestamp(
        "2024-12-24"
    )
    settled = load_market_data(request, tmp_path, now=datetime(2024, 12, 26, 16, 30, tzinfo=NEW_YORK))
    assert settled.bars.index[-1] == pd.Timestamp("2024-12-26")


def test_a_file_written_before_the_close_holds_no_final_bar_for_that_session(tmp_path: Path) -> None:
    frame = bars_until("2024-12-26", PARTIAL_CLOSE)
    spy = write_csv(frame.drop(columns="vix"), tmp_path / "spy.csv")
    vix = write_csv(frame[["vix"]].rename(columns={"vix": "close"}), tmp_path / "vix.csv")
    written_at_noon = NOON.timestamp()
    for path in (spy, vix):
        os.utime(path, (written_at_noon, written_at_noon))
    request = data_request(source="csv", csv_path=spy, vix_csv_path=vix, start=date(2024, 1, 2), final_delay=DELAY)
    evening = load_market_data(request, tmp_path / "ds", now=EVENING)  # read late: still written at noon
    assert evening.bars.index[-1] == pd.Timestamp("2024-12-24")
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").rglob(BARS_FILE))  # nothing cached

    write_csv(bars_until("2024-12-26", TRUE_CLOSE).drop(columns="vix"), spy)  # rewritten after the close
    after_close = (EVENING - timedelta(minutes=10)).timestamp()
    os.utime(spy, (after_close, after_close))
    os.utime(vix, (after_close, after_close))
    final = load_market_data(request, tmp_path / "ds", now=EVENING)
    assert final.bars.index[-1] == pd.Timestamp("2024-12-26") and final.bars["close"].iloc[-1] == TRUE_CLOSE


def test_a_stale_vix_file_is_named_not_the_bars_file(tmp_path: Path) -> None:
    frame = bars_until("2024-12-26", TRUE_CLOSE)
    spy = write_csv(frame.drop(columns="vix"), tmp_path / "spy.csv")
    vix = write_csv(frame[["vix"]].iloc[:-2].rename(columns={"vix": "close"}), tmp_path / "vix.csv")
    request = data_request(source="csv", csv_path=spy, vix_csv_path=vix, start=date(2024, 1, 2))
    with pytest.raises(DataError) as caught:
        load_market_data(request, tmp_path / "ds", now=EVENING)
    message = str(caught.value)
    assert message.startswith(f"VIX from VIX CSV file {vix} ends 2024-12-23")
    assert "CSV file spy.csv ends 2024-12-26" in message


def test_history_needs_no_calendar_cut(tmp_path: Path) -> None:
    """Data that ended long before it was obtained is all final (the sample, old files)."""
    request = replace(data_request(source="sample"), final_delay=DELAY)
    data = load_market_data(request, tmp_path, now=EVENING)
    assert data.bars.index[-1] == pd.Timestamp("2018-12-31")


def test_a_file_dated_in_the_future_says_so(tmp_path: Path) -> None:
    frame = make_bars(30, vix=False)
    frame.index = pd.DatetimeIndex(pd.bdate_range("2099-01-02", periods=30), name="date")  # past the calendar
    spy = write_csv(frame, tmp_path / "spy.csv")
    with pytest.raises(DataError, match=r"CSV file spy.csv: no final bar: its rows run 2099-01-02\.\..*after the last"):
        load_market_data(data_request(source="csv", csv_path=spy, use_vix=False), tmp_path / "ds", now=EVENING)
