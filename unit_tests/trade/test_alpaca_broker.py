"""AlpacaBroker through the real alpaca-py TradingClient against the fake Alpaca on 127.0.0.1.

Every Broker method, the error mapping (401/403/422/404), retries of 429/5xx/timeouts with
backoff, idempotent submission when the answer to a submitted order is lost, and secrets kept out
of logs and errors. Then the daily trader on top: a whole flat -> long -> flat cycle, a restart
after a crash between submission and fill, a refused order and bad keys.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import structlog

from finrl import log as flog
from finrl.agents.bundle import ModelBundle
from finrl.agents.training import train
from finrl.calendar import nyse_sessions
from finrl.log import configure_logging
from finrl.meta.data.frames import fingerprint
from finrl.meta.env.execution import Action
from finrl.meta.features import build_features
from finrl.meta.preprocessing import split_by_dates
from finrl.trade.alpaca_broker import DEFAULT_TIMEOUT, AlpacaBroker, TimeoutAdapter
from finrl.trade.broker import (
    AccountState,
    BrokerAuthError,
    BrokerError,
    BrokerRejectedError,
    BrokerUnavailableError,
)
from finrl.trade.journal import Journal
from finrl.trade.trader import DailyTrader, client_order_id
from unit_tests.conftest import (
    discrete3_config,
    feature_spec,
    make_bars,
    ppo_config,
    risk_limits,
    trader_config,
    training_job,
)
from unit_tests.fakes.alpaca_server import NEW_YORK, FakeAlpacaServer, FakeResponse, FakeTradingAPI

pytestmark = pytest.mark.integration

API_KEY = "PKFAKEKEYID7Q2XW9ZK4M"
API_SECRET = "fAkEsEcReT9f8e7d6c5b4a3928171615141312110"
READ_TIMEOUT = 0.3  # seconds; the fake's scripted timeouts sleep longer
SLOW = 1.2
MONDAY_EVENING = datetime(2024, 3, 4, 19, 30, tzinfo=NEW_YORK)  # after 19:00 ET: Alpaca takes opg orders
ORDERS = "/v2/orders"
BY_CLIENT_ID = "/v2/orders:by_client_order_id"
BUYING_POWER_403 = {"code": 40310000, "message": "insufficient buying power"}


class Sleeps(list[float]):
    """An injectable ``sleep`` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """AlpacaBroker registers its keys for log masking (process-wide): forget this test's keys."""
    before = set(flog._secrets)
    yield
    flog._secrets.clear()
    flog._secrets.update(before)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpacaServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeAlpacaServer(api_key=API_KEY, api_secret=API_SECRET) as fake:
        fake.enable_trading(cash=100_000.0, now=MONDAY_EVENING).set_price("SPY", 500.0)
        yield fake


@pytest.fixture
def trading(server: FakeAlpacaServer) -> FakeTradingAPI:
    assert server.trading is not None
    return server.trading


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_broker(server: FakeAlpacaServer, sleeps: Sleeps) -> Callable[..., AlpacaBroker]:
    def make(api_key: str = API_KEY, api_secret: str = API_SECRET, **options: Any) -> AlpacaBroker:
        options = {"timeout": (2.0, READ_TIMEOUT), "sleep": sleeps, **options}
        return AlpacaBroker(api_key, api_secret, server.base_url, **options)

    return make


@pytest.fixture
def broker(make_broker: Callable[..., AlpacaBroker]) -> AlpacaBroker:
    return make_broker()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every log line (finrl, alpaca-py, urllib3 at DEBUG) as JSON, with no secret masking."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    urllib3_level = logging.getLogger("urllib3").level
    stream = io.StringIO()
    configure_logging("DEBUG", json=True, stream=stream)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(urllib3_level)
    structlog.reset_defaults()


def posts(server: FakeAlpacaServer) -> int:
    return len(server.requests_to(ORDERS, "POST"))


# --------------------------------------------------------------------------- happy paths


def test_account(broker: AlpacaBroker, trading: FakeTradingAPI) -> None:
    assert broker.account() == AccountState(equity=100_000.0, cash=100_000.0, buying_power=100_000.0)
    trading.trading_blocked = True
    assert broker.account().trading_blocked


def test_now_is_the_clock_timestamp(broker: AlpacaBroker, trading: FakeTradingAPI) -> None:
    now = broker.now()
    assert now.tzinfo is not None and now == MONDAY_EVENING
    summer = datetime(2024, 7, 1, 14, 0, 0, 250_000, tzinfo=NEW_YORK)
    trading.set_now(summer)
    assert broker.now() == summer and broker.now().utcoffset() == timedelta(hours=-4)


def test_sessions_have_real_times_with_half_days(broker: AlpacaBroker, server: FakeAlpacaServer) -> None:
    sessions = broker.sessions(date(2024, 11, 25), date(2024, 12, 3))
    assert [s.day for s in sessions] == [date(2024, 11, d) for d in (25, 26, 27, 29)] + [
        date(2024, 12, d) for d in (2, 3)
    ]
    friday = sessions[3]  # the day after Thanksgiving closes at 13:00 ET
    assert friday.open == datetime(2024, 11, 29, 9, 30, tzinfo=NEW_YORK)
    assert friday.close == datetime(2024, 11, 29, 13, 0, tzinfo=NEW_YORK)
    assert all(s.open.tzinfo is not None and s.close.tzinfo is not None for s in sessions)
    expected = nyse_sessions(date(2024, 11, 25), date(2024, 12, 3))
    assert [(s.day, s.open, s.close) for s in sessions] == [(s.day, s.open, s.close) for s in expected]
    (request,) = server.requests_to("/v2/calendar")
    assert (request.param("start"), request.param("end")) == ("2024-11-25", "2024-12-03")
    summer = broker.sessions(date(2024, 7, 3), date(2024, 7, 5))  # 3 July closes early, 4 July is a holiday
    assert [(s.day, s.close.time()) for s in summer] == [(date(2024, 7, 3), time(13)), (date(2024, 7, 5), time(16))]


def test_positions_flat_long_and_short(make_broker: Callable[..., AlpacaBroker], server: FakeAlpacaServer) -> None:
    broker = make_broker()
    assert broker.position("SPY") is None
    trading = server.enable_trading(cash=100_000.0, now=MONDAY_EVENING, shorting_enabled=True)
    broker.submit_market_order("SPY", 10, "buy", "long-1", "opg")
    trading.fill(501.0)
    long = broker.position("SPY")
    assert long is not None and (long.symbol, long.qty, long.avg_entry_price) == ("SPY", 10.0, 501.0)
    broker.submit_market_order("SPY", 15, "sell", "flip-1", "opg")
    trading.fill(499.5)
    short = broker.position("SPY")
    assert short is not None and (short.qty, short.avg_entry_price) == (-5.0, 499.5)
    assert broker.account().cash == pytest.approx(100_000.0 - 10 * 501.0 + 15 * 499.5)


def test_order_by_client_id(broker: AlpacaBroker) -> None:
    assert broker.order_by_client_id("finrl-SPY-20240305") is None
    submitted = broker.submit_market_order("SPY", 3, "buy", "finrl-SPY-20240305", "opg")
    found = broker.order_by_client_id("finrl-SPY-20240305")
    assert found == submitted
    assert (found.symbol, found.side, found.qty, found.time_in_force) == ("SPY", "buy", 3.0, "opg")
    assert found.status == "accepted" and not found.done and found.filled_avg_price is None


@pytest.mark.parametrize(("tif", "qty"), [("opg", 12), ("day", 2.5), ("cls", 1)])
def test_submit_market_order(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, tif: str, qty: float
) -> None:
    order = broker.submit_market_order("SPY", qty, "buy", f"cid-{tif}", tif)
    assert (order.client_order_id, order.qty, order.time_in_force, order.status) == (f"cid-{tif}", qty, tif, "accepted")
    (request,) = server.requests_to(ORDERS, "POST")
    body = request.json()
    assert body["qty"] == qty  # as given: whole shares stay whole, fractions stay fractions
    assert (body["type"], body["side"], body["time_in_force"], body["client_order_id"]) == (
        "market", "buy", tif, f"cid-{tif}",
    )  # fmt: skip
    assert trading.order(f"cid-{tif}")["id"] == order.id


def test_fills_partial_fills_and_expiry_are_reported(broker: AlpacaBroker, trading: FakeTradingAPI) -> None:
    broker.submit_market_order("SPY", 10, "buy", "a", "opg")
    broker.submit_market_order("SPY", 4, "buy", "b", "opg")
    trading.partial_fill("a", 4, 500.0)
    partial = broker.order_by_client_id("a")
    assert partial is not None and (partial.status, partial.filled_qty, partial.done) == (
        "partially_filled",
        4.0,
        False,
    )
    trading.fill(502.0, client_order_id="a")
    filled = broker.order_by_client_id("a")
    assert filled is not None and filled.status == "filled" and filled.done
    assert filled.filled_qty == 10.0 and filled.filled_avg_price == pytest.approx((4 * 500.0 + 6 * 502.0) / 10)
    trading.expire()
    expired = broker.order_by_client_id("b")
    assert expired is not None and expired.status == "expired" and expired.done and expired.filled_qty == 0.0


# --------------------------------------------------------------------------- errors


def test_wrong_keys_raise_one_clear_auth_error(
    make_broker: Callable[..., AlpacaBroker], server: FakeAlpacaServer
) -> None:
    broker = make_broker(api_secret="wrong-secret-value-0123")
    with pytest.raises(BrokerAuthError) as info:
        broker.account()
    message = str(info.value)
    assert "ALPACA_API_KEY" in message and "ALPACA_API_SECRET" in message and "paper" in message
    assert API_KEY not in message and "wrong-secret-value-0123" not in message
    assert len(server.requests) == 1  # never retried
    assert info.value.exit_code == 3


def test_missing_keys() -> None:
    with pytest.raises(BrokerAuthError, match="ALPACA_API_KEY and ALPACA_API_SECRET"):
        AlpacaBroker(API_KEY, "")


def test_insufficient_buying_power_is_rejected_with_alpacas_message(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI
) -> None:
    with pytest.raises(BrokerRejectedError, match="insufficient buying power") as info:
        broker.submit_market_order("SPY", 1000, "buy", "too-big", "opg")  # 500k at 500 > 100k
    assert "403" in str(info.value)
    assert posts(server) == 1 and trading.orders == []


def test_scripted_403_and_422_are_rejections(broker: AlpacaBroker, server: FakeAlpacaServer) -> None:
    server.fail_next(status=403, body=BUYING_POWER_403, path=ORDERS, method="POST")
    with pytest.raises(BrokerRejectedError, match="insufficient buying power"):
        broker.submit_market_order("SPY", 1, "buy", "x", "opg")
    with pytest.raises(BrokerRejectedError, match="fractional orders must be DAY orders"):
        broker.submit_market_order("SPY", 1.5, "buy", "y", "opg")
    with pytest.raises(BrokerRejectedError, match="insufficient qty available"):
        broker.submit_market_order("SPY", 1, "sell", "z", "opg")  # nothing to sell, no shorting
    assert posts(server) == 3  # none retried


def test_opg_orders_between_0928_and_1900_are_refused(broker: AlpacaBroker, trading: FakeTradingAPI) -> None:
    """Alpaca refuses market-on-open orders right after the close: the daily cycle must run after 19:00 ET."""
    trading.set_now(datetime(2024, 3, 4, 16, 30, tzinfo=NEW_YORK))
    with pytest.raises(BrokerRejectedError, match="opg orders must be submitted after 7:00pm"):
        broker.submit_market_order("SPY", 1, "buy", "early", "opg")
    trading.set_now(datetime(2024, 3, 5, 8, 0, tzinfo=NEW_YORK))  # pre-market is fine
    assert broker.submit_market_order("SPY", 1, "buy", "morning", "opg").status == "accepted"


def test_invalid_arguments_are_refused_locally(broker: AlpacaBroker, server: FakeAlpacaServer) -> None:
    for qty, side, tif in ((0, "buy", "opg"), (float("nan"), "buy", "opg"), (1, "short", "opg"), (1, "buy", "gtc")):
        with pytest.raises(BrokerRejectedError):
            broker.submit_market_order("SPY", qty, side, "bad", tif)
    assert server.requests == []


# --------------------------------------------------------------------------- retries


def test_rate_limit_and_server_errors_are_retried(
    broker: AlpacaBroker, server: FakeAlpacaServer, sleeps: Sleeps
) -> None:
    server.fail_next(
        2, status=429, body={"message": "too many requests."}, headers={"Retry-After": "3"}, path="/v2/account"
    )
    assert broker.account().equity == 100_000.0
    assert sleeps == [3.0, 3.0]  # Retry-After honoured
    server.fail_next(1, status=500, path="/v2/clock")
    server.fail_next(1, status=502, path="/v2/clock")
    assert broker.now() == MONDAY_EVENING
    assert sleeps[2:] == [0.5, 1.0]  # exponential backoff
    assert len(server.requests_to("/v2/account")) == 3 and len(server.requests_to("/v2/clock")) == 3


def test_alpaca_py_retries_are_off_and_requests_have_a_timeout(broker: AlpacaBroker) -> None:
    client = broker._client
    assert client._retry == 0 and client._retry_codes == []
    assert client._session.get_adapter("https://paper-api.alpaca.markets/v2/account").timeout == (2.0, READ_TIMEOUT)
    default = AlpacaBroker(API_KEY, API_SECRET)
    assert isinstance(default._client._session.get_adapter("https://x/"), TimeoutAdapter)
    assert default._client._session.get_adapter("https://x/").timeout == DEFAULT_TIMEOUT


def test_retries_exhausted(broker: AlpacaBroker, server: FakeAlpacaServer, sleeps: Sleeps) -> None:
    server.fail_next(10, status=503, body={"message": "service unavailable"}, path="/v2/account")
    with pytest.raises(BrokerUnavailableError, match=r"after 4 attempts: HTTP 503: service unavailable"):
        broker.account()
    assert len(server.requests) == 4 and sleeps == [0.5, 1.0, 2.0]


def test_timeouts_are_retried(broker: AlpacaBroker, server: FakeAlpacaServer, sleeps: Sleeps) -> None:
    server.timeout_next(1, seconds=SLOW, path="/v2/positions/SPY")
    assert broker.position("SPY") is None
    assert len(server.requests_to("/v2/positions/SPY")) == 2 and sleeps == [0.5]
    server.timeout_next(4, seconds=SLOW, path="/v2/clock")
    with pytest.raises(BrokerUnavailableError, match="timed out"):
        broker.now()


def test_unreachable_server(sleeps: Sleeps) -> None:
    with FakeAlpacaServer() as gone:
        url = gone.base_url
    broker = AlpacaBroker(API_KEY, API_SECRET, url, sleep=sleeps, attempts=2)
    with pytest.raises(BrokerUnavailableError, match="connection failed"):
        broker.account()
    assert sleeps == [0.5]


# --------------------------------------------------------------------------- idempotent submission


@pytest.mark.parametrize("lost", ["timeout", "500"])
def test_lost_answer_after_the_order_was_created_returns_it(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, lost: str
) -> None:
    """A crash between submission and acknowledgment: Alpaca has the order, the client saw a failure."""
    if lost == "timeout":
        server.timeout_next(1, seconds=SLOW, path=ORDERS, method="POST", after_handling=True)
    else:
        server.fail_next(1, status=500, path=ORDERS, method="POST", after_handling=True)
    order = broker.submit_market_order("SPY", 7, "buy", "finrl-SPY-20240305", "opg")
    assert len(trading.orders) == 1 and trading.orders[0]["id"] == order.id
    assert (order.client_order_id, order.qty, order.status) == ("finrl-SPY-20240305", 7.0, "accepted")
    assert posts(server) == 1  # found by its client order id: never sent again
    assert len(server.requests_to(BY_CLIENT_ID)) == 1


@pytest.mark.parametrize("lost", ["timeout", "500"])
def test_failed_submission_is_retried_once(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, lost: str
) -> None:
    if lost == "timeout":
        server.timeout_next(1, seconds=SLOW, path=ORDERS, method="POST")
    else:
        server.fail_next(1, status=500, path=ORDERS, method="POST")
    order = broker.submit_market_order("SPY", 7, "buy", "finrl-SPY-20240305", "opg")
    assert posts(server) == 2 and len(server.requests_to(BY_CLIENT_ID)) == 1
    assert [o["id"] for o in trading.orders] == [order.id]


def test_duplicate_client_order_id_returns_the_existing_order(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI
) -> None:
    first = broker.submit_market_order("SPY", 5, "buy", "finrl-SPY-20240305", "opg")
    again = broker.submit_market_order("SPY", 5, "buy", "finrl-SPY-20240305", "opg")
    assert again == first and len(trading.orders) == 1
    assert posts(server) == 2  # the second answered 422 "client_order_id must be unique"


def test_submission_unavailable_creates_no_order(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, sleeps: Sleeps
) -> None:
    server.fail_next(10, status=500, path=ORDERS, method="POST")
    with pytest.raises(BrokerUnavailableError, match="submit finrl-SPY-20240305 failed after 4 attempts"):
        broker.submit_market_order("SPY", 5, "buy", "finrl-SPY-20240305", "opg")
    assert trading.orders == [] and posts(server) == 4 and len(server.requests_to(BY_CLIENT_ID)) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_last_try_lost_after_creation_still_returns_the_order(
    make_broker: Callable[..., AlpacaBroker], server: FakeAlpacaServer, trading: FakeTradingAPI
) -> None:
    server.fail_next(1, status=503, path=ORDERS, method="POST")
    server.timeout_next(1, seconds=SLOW, path=ORDERS, method="POST", after_handling=True)
    order = make_broker(attempts=2).submit_market_order("SPY", 2, "buy", "last", "opg")
    assert [o["id"] for o in trading.orders] == [order.id] and posts(server) == 2


# --------------------------------------------------------------------------- secrets


def error_texts_into(texts: list[str]) -> Callable[[Callable[[], Any]], None]:
    """A runner that calls a function and keeps every text of the error it raises (str, repr, traceback)."""

    def capture(call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:  # every error's text is inspected
            texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    return capture


def test_secrets_never_reach_logs_or_errors(
    make_broker: Callable[..., AlpacaBroker], server: FakeAlpacaServer, log_stream: io.StringIO
) -> None:
    texts: list[str] = []
    capture = error_texts_into(texts)

    broker = make_broker()
    flog._secrets.clear()  # no masking: prove the broker never writes the keys at all
    server.fail_next(10, status=500, path="/v2/account")
    capture(broker.account)
    server.timeout_next(4, seconds=SLOW, path="/v2/clock")
    capture(broker.now)
    server.fail_next(1, status=403, body=BUYING_POWER_403, path=ORDERS, method="POST")
    capture(lambda: broker.submit_market_order("SPY", 1, "buy", "s-1", "opg"))
    server.fail_next(1, status=500, path=ORDERS, method="POST", after_handling=True)
    capture(lambda: broker.submit_market_order("SPY", 1, "buy", "s-2", "opg"))
    bad = make_broker(api_key="PKWRONGKEY000111222", api_secret="wrongSecret999888777")
    flog._secrets.clear()
    capture(bad.account)
    with FakeAlpacaServer() as gone:
        url = gone.base_url
    capture(AlpacaBroker(API_KEY, API_SECRET, url, attempts=2, sleep=lambda _: None).account)
    logs = log_stream.getvalue()
    assert len(texts) == 5 * 3
    assert "alpaca_retry" in logs and "alpaca_order_found_after_failure" in logs  # the log did run
    for secret in (API_KEY, API_SECRET, "PKWRONGKEY000111222", "wrongSecret999888777"):
        assert secret not in logs
        assert not [t for t in texts if secret in t]
        assert secret not in repr(broker) and secret not in repr(bad)


# --------------------------------------------------------------------------- equity history

HISTORY = "/v2/account/portfolio/history"


def test_equity_history_is_the_accounts_daily_closes_on_new_york_dates(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI
) -> None:
    trading.set_equity_history(
        {
            date(2024, 3, 5): 95_000.0,  # before start: not asked for
            date(2024, 3, 6): None,  # null and zero: the account was not funded yet
            date(2024, 3, 7): 0.0,
            date(2024, 3, 8): 100_000.0,  # EST: stamped 05:00 UTC
            date(2024, 3, 11): 100_500.25,  # EDT from 10 March: stamped 04:00 UTC
            date(2024, 3, 12): 99_800.0,
            date(2024, 11, 1): 101_000.0,  # EDT
            date(2024, 11, 4): 102_000.0,  # EST again from 3 November
        }
    )
    assert broker.equity_history(date(2024, 3, 6)) == [
        (date(2024, 3, 8), 100_000.0),
        (date(2024, 3, 11), 100_500.25),
        (date(2024, 3, 12), 99_800.0),
        (date(2024, 11, 1), 101_000.0),
        (date(2024, 11, 4), 102_000.0),
    ]
    (request,) = server.requests_to(HISTORY)
    assert request.param("timeframe") == "1D"
    assert request.param("start") == "2024-03-06T00:00:00-05:00"  # midnight New York
    assert broker.equity_history(date(2024, 11, 2)) == [(date(2024, 11, 4), 102_000.0)]
    assert broker.equity_history(date(2024, 11, 5)) == []


def test_equity_history_from_recorded_closes(broker: AlpacaBroker, trading: FakeTradingAPI) -> None:
    assert broker.equity_history(date(2024, 1, 1)) == []  # a fresh account has none
    trading.record_close(date(2024, 3, 4))
    broker.submit_market_order("SPY", 10, "buy", "finrl-SPY-20240305", "opg")
    trading.fill(500.0)
    trading.set_price("SPY", 510.0)
    trading.record_close(date(2024, 3, 5))
    assert broker.equity_history(date(2024, 3, 4)) == [(date(2024, 3, 4), 100_000.0), (date(2024, 3, 5), 100_100.0)]


def test_equity_history_retries_then_fails_in_one_line(
    broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, sleeps: Sleeps
) -> None:
    trading.set_equity_history({date(2024, 3, 4): 100_000.0})
    server.fail_next(1, status=500, path=HISTORY)
    assert broker.equity_history(date(2024, 3, 1)) == [(date(2024, 3, 4), 100_000.0)]
    assert len(server.requests_to(HISTORY)) == 2 and sleeps == [0.5]
    server.fail_next(10, status=500, body={"message": "internal server error"}, path=HISTORY)
    with pytest.raises(BrokerUnavailableError) as raised:
        broker.equity_history(date(2024, 3, 1))
    message = str(raised.value)
    assert message == "Alpaca portfolio history failed after 4 attempts: HTTP 500: internal server error"
    assert "\n" not in message and len(server.requests_to(HISTORY)) == 6


def test_equity_history_errors_keep_the_keys_out(
    make_broker: Callable[..., AlpacaBroker], server: FakeAlpacaServer, log_stream: io.StringIO
) -> None:
    broker = make_broker()
    flog._secrets.clear()  # no log masking: the broker itself must keep the keys out
    texts: list[str] = []
    capture = error_texts_into(texts)

    server.fail_next(4, status=503, path=HISTORY)
    capture(lambda: broker.equity_history(date(2024, 3, 1)))
    server.timeout_next(4, seconds=SLOW, path=HISTORY)
    capture(lambda: broker.equity_history(date(2024, 3, 1)))
    # an answer of the wrong shape that quotes a key: the error names the shape, never the key
    server.route("GET", HISTORY, lambda _r, _p: FakeResponse(200, {"detail": f"key {API_KEY} {API_SECRET}"}))
    capture(lambda: broker.equity_history(date(2024, 3, 1)))
    bad = make_broker(api_key="PKWRONGKEY000111222", api_secret="wrongSecret999888777")
    flog._secrets.clear()
    capture(lambda: bad.equity_history(date(2024, 3, 1)))
    assert len(texts) == 4 * 3
    assert any("unexpected answer from Alpaca's portfolio history" in t for t in texts)
    assert any("Alpaca refused the API keys (HTTP 401)" in t for t in texts)
    logs = log_stream.getvalue()
    assert "alpaca_retry" in logs
    for secret in (API_KEY, API_SECRET, "PKWRONGKEY000111222", "wrongSecret999888777"):
        assert secret not in logs
        assert not [t for t in texts if secret in t]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"timestamp": [1709874000], "equity": []}, "1 timestamps but 0 equities"),
        ({"timestamp": ["x"], "equity": [1.0]}, "timestamp 'x'"),
        ([], "[]"),
    ],
)
def test_equity_history_refuses_a_malformed_answer(
    broker: AlpacaBroker, server: FakeAlpacaServer, body: Any, reason: str
) -> None:
    server.route("GET", HISTORY, lambda _r, _p: FakeResponse(200, body))
    with pytest.raises(BrokerError, match="unexpected answer from Alpaca's portfolio history") as raised:
        broker.equity_history(date(2024, 3, 1))
    assert reason in str(raised.value) and not isinstance(raised.value, BrokerUnavailableError)


# --------------------------------------------------------------------------- base URL


def test_paper_unless_the_live_url() -> None:
    assert AlpacaBroker(API_KEY, API_SECRET).paper
    paper = AlpacaBroker(API_KEY, API_SECRET, "https://paper-api.alpaca.markets/v2/")
    assert paper.paper and paper.base_url == "https://paper-api.alpaca.markets"
    live = AlpacaBroker(API_KEY, API_SECRET, "https://api.alpaca.markets")
    assert not live.paper and live._client._base_url == "https://api.alpaca.markets"
    assert "LIVE" in repr(live) and API_KEY not in repr(live)


# --------------------------------------------------------------------------- the daily trader on Alpaca

TRADER_BARS = make_bars(300, seed=11)
TRADER_FEATURES = build_features(TRADER_BARS, feature_spec())
D0, D1, D2 = (d.date() for d in TRADER_FEATURES.index[-3:])


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A sell/hold/buy bundle: the trader tests script its actions as Action.BUY, SELL and HOLD."""
    root = tmp_path_factory.mktemp("alpaca-models")
    info = {"source": "generated", "symbol": "SPY", "fingerprint": fingerprint(TRADER_BARS), "rows": len(TRADER_BARS)}
    job = training_job(
        features=TRADER_FEATURES, feature_spec=feature_spec(), data_info=info,
        split=split_by_dates(pd.DatetimeIndex(TRADER_FEATURES.index)), run_name="alpaca-tiny", models_dir=root,
        tensorboard_dir=root / "tb", ppo=ppo_config(n_envs=2, n_steps=64, batch_size=64, n_epochs=1, net_arch=(16,)),
        env=discrete3_config(), total_timesteps=128, eval_freq=0, checkpoint_freq=0, progress=False,
    )  # fmt: skip
    return train(job).bundle


def evening(day: date) -> datetime:
    return datetime.combine(day, time(19, 30), tzinfo=NEW_YORK)


def opening(day: date) -> datetime:
    return datetime.combine(day, time(9, 30), tzinfo=NEW_YORK)


def bar(day: date, column: str) -> float:
    return float(TRADER_BARS.loc[pd.Timestamp(day), column])


def scripted(*actions: Action) -> Callable[[Any], int]:
    remaining = list(actions)
    return lambda _obs: int(remaining.pop(0) if len(remaining) > 1 else remaining[0])


def make_trader(bundle: ModelBundle, broker: AlpacaBroker, root: Path, policy: Callable[[Any], int]) -> DailyTrader:
    return DailyTrader(
        bundle=bundle, policy=policy, broker=broker,
        features_for=lambda day: TRADER_FEATURES.loc[: pd.Timestamp(day)], journal=Journal(root / "journal.jsonl"),
        state_path=root / "state.json", risk=risk_limits(), config=trader_config(symbol="SPY", strategy="finrl"),
    )  # fmt: skip


def events(root: Path) -> list[str]:
    return [e["event"] for e in Journal(root / "journal.jsonl").entries()]


def at_close(trading: FakeTradingAPI, day: date) -> None:
    trading.set_now(evening(day))
    trading.set_price("SPY", bar(day, "close"))


def test_daily_cycle_flat_long_flat(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, trading: FakeTradingAPI, tmp_path: Path
) -> None:
    trader = make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY, Action.SELL, Action.HOLD))
    at_close(trading, D0)
    first = trader.run_cycle(D0)
    assert first.outcome == "submitted" and first.client_order_id == client_order_id("finrl", "SPY", D1)
    (buy,) = trading.orders
    assert (buy["side"], buy["time_in_force"], buy["status"]) == ("buy", "opg", "accepted")
    assert float(buy["qty"]) == first.order_qty > 0 and float(buy["qty"]).is_integer()
    assert trader.state.pending == [first.client_order_id]

    trading.set_now(opening(D1))
    trading.fill(bar(D1, "open"))
    at_close(trading, D1)
    second = trader.run_cycle(D1)
    assert second.outcome == "submitted" and second.order_qty == -first.order_qty
    assert second.client_order_id == client_order_id("finrl", "SPY", D2)
    finals = [e for e in Journal(tmp_path / "journal.jsonl").entries() if e["event"] == "order_final"]
    assert [(e["client_order_id"], e["status"], e["filled_qty"]) for e in finals] == [
        (first.client_order_id, "filled", first.order_qty)
    ]
    assert finals[0]["filled_avg_price"] == pytest.approx(bar(D1, "open"))

    trading.set_now(opening(D2))
    trading.fill(bar(D2, "open"))
    at_close(trading, D2)
    third = trader.run_cycle(D2)
    assert third.outcome == "no_trade" and broker.position("SPY") is None
    assert trader.state.pending == []
    assert events(tmp_path).count("order_final") == 2 and events(tmp_path).count("order_submitted") == 2
    expected_cash = 100_000.0 + first.order_qty * (bar(D2, "open") - bar(D1, "open"))
    assert broker.account().cash == pytest.approx(expected_cash)


def test_restart_after_a_crash_between_submission_and_fill_sends_no_duplicate(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, tmp_path: Path
) -> None:
    at_close(trading, D0)
    assert make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY)).run_cycle(D0).outcome == "submitted"
    (tmp_path / "state.json").unlink()  # the crash came before the state file was written
    again = make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY)).run_cycle(D0)
    assert again.outcome == "exists" and len(trading.orders) == 1 and posts(server) == 1
    assert "order_exists" in events(tmp_path)
    assert json.loads((tmp_path / "state.json").read_text())["pending"] == [again.client_order_id]


def test_lost_acknowledgment_during_the_cycle_still_one_order(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, tmp_path: Path
) -> None:
    at_close(trading, D0)
    server.timeout_next(1, seconds=SLOW, path=ORDERS, method="POST", after_handling=True)
    result = make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY)).run_cycle(D0)
    assert result.outcome == "submitted" and len(trading.orders) == 1 and posts(server) == 1


def test_refused_order_is_journaled_not_raised(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, server: FakeAlpacaServer, trading: FakeTradingAPI, tmp_path: Path
) -> None:
    at_close(trading, D0)
    server.fail_next(1, status=403, body=BUYING_POWER_403, path=ORDERS, method="POST")
    result = make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY)).run_cycle(D0)
    assert result.outcome == "rejected" and "insufficient buying power" in result.detail
    (entry,) = [e for e in Journal(tmp_path / "journal.jsonl").entries() if e["event"] == "order_rejected"]
    assert "insufficient buying power" in entry["error"] and trading.orders == []


def test_cycle_right_after_the_close_is_refused_by_alpaca(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, trading: FakeTradingAPI, tmp_path: Path
) -> None:
    """Alpaca takes opg orders only after 19:00 ET (or before 09:28): a 16:30 cycle is refused, not crashed."""
    at_close(trading, D0)
    trading.set_now(datetime.combine(D0, time(16, 30), tzinfo=NEW_YORK))
    result = make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY)).run_cycle(D0)
    assert result.outcome == "rejected" and "opg orders must be submitted after 7:00pm" in result.detail


def test_bad_keys_stop_the_trader(
    tiny_bundle: ModelBundle,
    make_broker: Callable[..., AlpacaBroker],
    server: FakeAlpacaServer,
    trading: FakeTradingAPI,
    tmp_path: Path,
) -> None:
    at_close(trading, D0)
    with pytest.raises(BrokerAuthError):  # at the first call: the account
        make_trader(tiny_bundle, make_broker(api_secret="revoked-secret-42"), tmp_path, scripted(Action.BUY)).run_cycle(
            D0
        )
    server.fail_next(1, status=401, body={"message": "unauthorized."}, path=ORDERS, method="POST")
    with pytest.raises(BrokerAuthError, match="ALPACA_API_KEY"):  # keys revoked between calls: on submission
        make_trader(tiny_bundle, make_broker(), tmp_path, scripted(Action.BUY)).run_cycle(D0)
    assert "order_rejected" in events(tmp_path) and trading.orders == []
