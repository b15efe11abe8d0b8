"""The fake Alpaca trading API itself: alpaca-py's own models parse every answer, and state moves right."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import requests

from unit_tests.conftest import REPO_ROOT
from unit_tests.fakes.alpaca_server import NEW_YORK, FakeAlpacaServer, FakeTradingAPI

pytestmark = pytest.mark.integration

KEY, SECRET = "fake-key-id", "fake-secret-key"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpacaServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeAlpacaServer(api_key=KEY, api_secret=SECRET) as fake:
        fake.enable_trading(now=datetime(2024, 3, 4, 19, 30, tzinfo=NEW_YORK)).set_price("SPY", 500.0)
        yield fake


@pytest.fixture
def trading(server: FakeAlpacaServer) -> FakeTradingAPI:
    assert server.trading is not None
    return server.trading


@pytest.fixture
def client(server: FakeAlpacaServer) -> Any:
    from alpaca.trading.client import TradingClient

    return TradingClient(KEY, SECRET, url_override=server.base_url)


def order(client: Any, qty: float, side: str, cid: str, tif: str = "opg") -> Any:
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    request = MarketOrderRequest(
        symbol="SPY", qty=qty, side=OrderSide(side), time_in_force=TimeInForce(tif), client_order_id=cid
    )
    return client.submit_order(request)


def test_trading_api_is_opt_in() -> None:
    with FakeAlpacaServer(api_key=KEY, api_secret=SECRET) as plain:
        assert requests.get(f"{plain.base_url}/v2/account", headers=HEADERS, timeout=5).status_code == 404


def test_account_and_positions_follow_fills(client: Any, trading: FakeTradingAPI) -> None:
    order(client, 10, "buy", "a")
    account = client.get_account()
    assert (account.cash, account.equity, account.status.value) == ("100000", "100000", "ACTIVE")
    assert float(account.buying_power) == 100_000.0 - 10 * 500.0  # an open buy holds buying power
    trading.fill(490.0)
    trading.set_price("SPY", 495.0)
    account = client.get_account()
    assert float(account.cash) == 100_000.0 - 4_900.0 and float(account.equity) == 100_000.0 - 4_900.0 + 4_950.0
    assert float(account.long_market_value) == 4_950.0
    (position,) = client.get_all_positions()
    assert (position.symbol, position.qty, position.side.value, position.avg_entry_price) == (
        "SPY",
        "10",
        "long",
        "490",
    )
    assert float(position.unrealized_pl) == 50.0 and position.exchange.value == "ARCA"
    assert client.get_open_position(str(position.asset_id)).symbol == "SPY"  # by asset id too


def test_orders_list_get_cancel(client: Any, trading: FakeTradingAPI) -> None:
    from alpaca.common.exceptions import APIError
    from alpaca.trading.enums import QueryOrderStatus
    from alpaca.trading.requests import GetOrdersRequest

    first = order(client, 1, "buy", "one")
    second = order(client, 2, "buy", "two")
    assert [o.client_order_id for o in client.get_orders()] == ["two", "one"]  # open, newest first
    assert client.get_order_by_id(first.id).client_order_id == "one"
    assert client.get_order_by_client_id("two").id == second.id
    client.cancel_order_by_id(second.id)
    assert client.get_order_by_id(second.id).status.value == "canceled"
    with pytest.raises(APIError) as info:
        client.cancel_order_by_id(second.id)
    assert info.value.status_code == 422
    trading.fill(500.0)
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, direction="asc"))
    assert [(o.client_order_id, o.status.value) for o in closed] == [("one", "filled"), ("two", "canceled")]
    filled = client.get_order_by_id(first.id)
    assert filled.filled_qty == "1" and filled.filled_avg_price == "500" and filled.filled_at is not None
    with pytest.raises(APIError) as missing:
        client.get_order_by_client_id("nope")
    assert missing.value.status_code == 404 and missing.value.message == "order not found"


def test_order_validation(client: Any, server: FakeAlpacaServer, trading: FakeTradingAPI) -> None:
    from alpaca.common.exceptions import APIError

    def refused(qty: float, side: str, cid: str, tif: str = "opg") -> tuple[int, int, str]:
        with pytest.raises(APIError) as info:
            order(client, qty, side, cid, tif)
        return info.value.status_code, info.value.code, info.value.message

    order(client, 1, "buy", "dup")
    assert refused(1, "buy", "dup") == (422, 40010001, "client_order_id must be unique")
    assert refused(0.5, "buy", "frac") == (422, 40010001, "fractional orders must be DAY orders")
    assert refused(1, "buy", "x" * 129)[0] == 422
    assert refused(1000, "buy", "big") == (403, 40310000, "insufficient buying power")
    assert refused(1, "sell", "naked")[:2] == (403, 40310000)
    trading.trading_blocked = True
    assert refused(1, "buy", "blocked")[0] == 403
    trading.trading_blocked = False
    trading.set_now(datetime(2024, 3, 4, 15, 55, tzinfo=NEW_YORK))  # market open: new, but cls closed
    assert order(client, 1, "buy", "open-day", "day").status.value == "new"
    assert "cls orders" in refused(1, "buy", "late-cls", "cls")[2]
    trading.set_now(datetime(2024, 3, 4, 17, 0, tzinfo=NEW_YORK))
    assert "4:00pm and 7:00pm" in refused(1, "buy", "after-hours", "day")[2]
    answer = requests.post(f"{server.base_url}/v2/orders", json={"symbol": "SPY"}, headers=HEADERS, timeout=5)
    assert answer.status_code == 422 and answer.json()["code"] == 40010001


def test_partial_fill_and_expiry(client: Any, trading: FakeTradingAPI) -> None:
    order(client, 10, "buy", "p")
    trading.partial_fill("p", 3, 499.0)
    partial = client.get_order_by_client_id("p")
    assert (partial.status.value, partial.filled_qty, partial.filled_avg_price) == ("partially_filled", "3", "499")
    assert trading.expire() == 1
    assert client.get_order_by_client_id("p").status.value == "expired" and trading.position_qty("SPY") == 3


def test_clock_and_calendar(client: Any, trading: FakeTradingAPI) -> None:
    from alpaca.trading.requests import GetCalendarRequest

    clock = client.get_clock()
    assert not clock.is_open and clock.next_open == datetime(2024, 3, 5, 9, 30, tzinfo=NEW_YORK)
    trading.set_now(datetime(2024, 11, 29, 12, 0, tzinfo=NEW_YORK))
    clock = client.get_clock()
    assert clock.is_open and clock.next_close == datetime(2024, 11, 29, 13, 0, tzinfo=NEW_YORK)
    days = client.get_calendar(GetCalendarRequest(start=date(2024, 11, 27), end=date(2024, 11, 29)))
    assert [(d.date, d.open.time().isoformat(), d.close.time().isoformat()) for d in days] == [
        (date(2024, 11, 27), "09:30:00", "16:00:00"),
        (date(2024, 11, 29), "09:30:00", "13:00:00"),
    ]
    assert len(client.get_calendar()) == 252  # the year of "now" by default (2024)


HISTORY = "/v2/account/portfolio/history"
EST_0308 = 1709874000  # 2024-03-08 00:00 New York = 05:00 UTC
EDT_0311 = 1710129600  # 2024-03-11 00:00 New York = 04:00 UTC (daylight saving from 10 March)


def history(server: FakeAlpacaServer, **params: str) -> requests.Response:
    return requests.get(f"{server.base_url}{HISTORY}", params=params, headers=HEADERS, timeout=5)


def test_portfolio_history_parses_in_alpaca_py(client: Any, trading: FakeTradingAPI) -> None:
    from alpaca.trading.requests import GetPortfolioHistoryRequest

    trading.set_equity_history(
        {date(2024, 3, 5): 95_000.0, date(2024, 3, 7): 0.0, date(2024, 3, 8): 100_000.0, date(2024, 3, 11): 104_500.0}
    )
    request = GetPortfolioHistoryRequest(
        timeframe="1D", start=datetime(2024, 3, 6, tzinfo=NEW_YORK), end=datetime(2024, 3, 11, 16, tzinfo=NEW_YORK)
    )
    answer = client.get_portfolio_history(request)
    assert answer.timeframe == "1D" and answer.cashflow == {}
    assert answer.timestamp == [EST_0308 - 86_400, EST_0308, EDT_0311]  # each day's midnight in New York
    assert answer.equity == [0.0, 100_000.0, 104_500.0]
    assert answer.base_value == 95_000.0  # the last close before the window
    assert answer.profit_loss == [-95_000.0, 5_000.0, 9_500.0]
    assert answer.profit_loss_pct == pytest.approx([-1.0, 5_000 / 95_000, 9_500 / 95_000])


def test_portfolio_history_records_closes_and_reports_nulls(server: FakeAlpacaServer, trading: FakeTradingAPI) -> None:
    assert history(server, timeframe="1D").json() == {
        "timestamp": [], "equity": [], "profit_loss": [], "profit_loss_pct": [],
        "base_value": 0.0, "timeframe": "1D", "cashflow": {},
    }  # fmt: skip
    assert trading.record_close() == 100_000.0  # "now" is Monday 4 March 2024, 19:30 New York
    trading.cash = 99_000.0
    trading.record_close(date(2024, 3, 5))
    assert trading.equity_history == {date(2024, 3, 4): 100_000.0, date(2024, 3, 5): 99_000.0}
    body = history(server, timeframe="1D", date_end="2024-03-05").json()
    assert body["equity"] == [100_000.0, 99_000.0] and body["base_value"] == 100_000.0
    assert "base_value_asof" not in body  # no close before the window
    trading.set_equity_history({date(2024, 3, 4): None, date(2024, 3, 5): 99_000.0})
    body = history(server, timeframe="1D", date_end="2024-03-05").json()
    assert body["equity"] == [None, 99_000.0]
    assert (body["profit_loss"], body["profit_loss_pct"]) == ([None, 0.0], [None, 0.0])


def test_portfolio_history_window(server: FakeAlpacaServer, trading: FakeTradingAPI) -> None:
    trading.set_equity_history({date(2024, 2, 1) + timedelta(days=i): 100_000.0 + i for i in range(60)})

    def days(**params: str) -> tuple[date, date]:
        answer = history(server, **params)
        assert answer.status_code == 200, answer.text
        stamps = answer.json()["timestamp"]
        first, last = (datetime.fromtimestamp(s, NEW_YORK).date() for s in (stamps[0], stamps[-1]))
        return first, last

    assert days() == (date(2024, 2, 4), date(2024, 3, 4))  # 1M up to "now", 1D for a month
    assert days(timeframe="1D", period="1W", date_end="2024-03-12") == (date(2024, 3, 5), date(2024, 3, 12))
    assert days(timeframe="1D", period="3D", start="2024-03-06T00:00:00-05:00") == (date(2024, 3, 6), date(2024, 3, 9))
    assert days(timeframe="1D", start="2024-03-06T00:00:00-05:00", end="2024-03-08T16:00:00-05:00") == (
        date(2024, 3, 6),
        date(2024, 3, 8),
    )
    assert days(timeframe="1D", start="2024-03-06T03:00:00Z", date_end="2024-03-07") == (
        date(2024, 3, 5),  # 03:00 UTC is still the 5th in New York
        date(2024, 3, 7),
    )
    body = history(server, timeframe="1D", start="2024-03-06T00:00:00-05:00", date_end="2024-03-07").json()
    assert (body["base_value"], body["base_value_asof"]) == (100_033.0, "2024-03-05")  # 1 February + 33 days
    trading.set_now(datetime(2024, 3, 12, 19, 30, tzinfo=NEW_YORK))
    assert days(timeframe="1D", start="2024-03-06T00:00:00-05:00") == (date(2024, 3, 6), date(2024, 3, 12))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeframe": "1D", "period": "1W", "start": "2024-03-01T00:00:00Z", "end": "2024-03-08T00:00:00Z"},
         "only two of start, end (or date_end) and period"),
        ({"timeframe": "1D", "end": "2024-03-08T00:00:00Z", "date_end": "2024-03-08"}, "only one of end and date_end"),
        ({"timeframe": "1D", "period": "2X"}, "invalid period"),
        ({"timeframe": "1D", "start": "2024-03-01"}, "has no timezone"),
        ({"timeframe": "1D", "date_end": "March"}, "invalid date_end"),
        ({"timeframe": "1Min"}, "only timeframe=1D"),
        ({"period": "1W"}, "only timeframe=1D"),  # Alpaca picks minutes for a week
        ({"timeframe": "2D"}, "invalid timeframe"),
    ],
)  # fmt: skip
def test_portfolio_history_refusals(
    server: FakeAlpacaServer, trading: FakeTradingAPI, params: dict[str, str], message: str
) -> None:
    answer = history(server, **params)
    assert answer.status_code == 422 and message in answer.json()["message"]


def test_scripted_failures_match_path_and_method(server: FakeAlpacaServer, trading: FakeTradingAPI) -> None:
    server.fail_next(1, status=500, path="/v2/orders", method="POST", after_handling=True)
    url = f"{server.base_url}/v2/orders"
    assert requests.get(url, headers=HEADERS, timeout=5).status_code == 200  # a GET is not matched
    body = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "market", "time_in_force": "opg"}
    assert requests.post(url, json=body, headers=HEADERS, timeout=5).status_code == 500
    assert len(trading.orders) == 1  # handled, then the answer was replaced
    server.timeout_next(1, seconds=1.0, path="/v2/orders", method="POST")
    with pytest.raises(requests.Timeout):
        requests.post(url, json=body, headers=HEADERS, timeout=0.2)
    assert len(trading.orders) == 1  # a failure before handling has no effect


def test_runs_as_a_process_with_a_fixed_clock_and_stops_on_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m unit_tests.fakes.alpaca_server` (the Docker e2e test's fake-alpaca container)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "unit_tests.fakes.alpaca_server", "--port", str(port),
         "--now", "2019-01-01T00:30:00Z", "--api-key", "k", "--api-secret", "s"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()
            try:
                health = requests.get(f"{base}/__fake/health", timeout=5)  # public: no keys
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the fake never answered"
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "now": "2019-01-01T00:30:00.000000Z"}
        assert requests.get(f"{base}/v2/clock", timeout=5).status_code == 401
        keys = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}
        clock = requests.get(f"{base}/v2/clock", headers=keys, timeout=5).json()
        assert clock["timestamp"].startswith("2018-12-31T19:30:00") and clock["is_open"] is False
        body = {"symbol": "SPY", "qty": "3", "side": "buy", "type": "market", "time_in_force": "opg"}
        assert requests.post(f"{base}/v2/orders", json=body, headers=keys, timeout=5).status_code == 200
        seen = requests.get(f"{base}/__fake/orders", timeout=5).json()
        assert seen["order_posts"] == 1 and [o["qty"] for o in seen["orders"]] == ["3"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "listening" in out and "stopped" in out
