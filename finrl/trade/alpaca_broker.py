"""The Alpaca adapter of :class:`finrl.trade.broker.Broker`, through alpaca-py's ``TradingClient``.

Failures map onto the trader's three errors:

* 401 -> :class:`BrokerAuthError` (one message naming ALPACA_API_KEY / ALPACA_API_SECRET);
* 403, 422 and other 4xx -> :class:`BrokerRejectedError` with Alpaca's own message (insufficient
  buying power, market hours, a bad order); 404 is "none" where the question allows it (no
  position, no order with that client order id);
* timeouts, connection errors, 429 and 5xx -> retried with exponential backoff (429's
  ``Retry-After`` honoured), then :class:`BrokerUnavailableError` (the policy, shared with the
  market-data client, lives in :mod:`finrl.http_retry`).

alpaca-py retries only 429 and 504 itself, sleeping 3 s each time, and sets no request timeout:
its retries are turned off here (this module's cover every transient failure) and every request
gets :data:`DEFAULT_TIMEOUT` unless the caller chooses another.

Submitting is idempotent by client order id. After a timeout or a 5xx the order may exist all the
same (the request reached Alpaca, the answer was lost), so before each retry, and once more after
the last failed try, the id is looked up and an existing order is returned; Alpaca's own
"client_order_id must be unique" (422) answer is resolved the same way. A duplicate order is
never sent.

The API keys never appear in a message or a log line: errors carry only the HTTP status and
Alpaca's message, and any text that would quote a key is masked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import requests

from finrl.calendar import NEW_YORK, SessionTimes
from finrl.http_retry import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from finrl.http_retry import (
    RetriesExhaustedError,
    RetryPolicy,
    Timeout,
    TransientError,
    api_message,
    call_with_retries,
    configure_alpaca_client,
    is_transient_status,
    pause,
    retry_after,
    short,
    transient_from_requests,
)
from finrl.http_retry import TimeoutAdapter as TimeoutAdapter
from finrl.log import get_logger, mask_text, register_secrets
from finrl.trade.broker import (
    AccountState,
    BrokerAuthError,
    BrokerError,
    BrokerRejectedError,
    BrokerUnavailableError,
    OrderState,
    PositionState,
)

if TYPE_CHECKING:
    import pandas as pd

log = get_logger(__name__)

T = TypeVar("T")

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
TIME_IN_FORCE = ("opg", "day", "cls")
_AUTH_MESSAGE = (
    "Alpaca refused the API keys (HTTP 401): check ALPACA_API_KEY and ALPACA_API_SECRET, and that "
    "they belong to {kind} trading at {url}"
)


class _DuplicateOrderError(Exception):
    """Alpaca's 422 "client_order_id must be unique": the order exists already."""


def normalise_base_url(url: str) -> str:
    """``https://paper-api.alpaca.markets`` from any of its spellings (trailing ``/``, ``/v2``)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v2"):
        url = url[: -len("/v2")]
    return url


def is_live_url(url: str) -> bool:
    return normalise_base_url(url) == LIVE_URL


class AlpacaBroker:
    """Alpaca through alpaca-py: paper unless ``base_url`` is Alpaca's live endpoint.

    ``attempts`` counts every try of one call (so ``attempts - 1`` retries); waits grow from
    ``backoff`` seconds, doubling, up to ``max_backoff``. ``sleep`` is injectable for tests.
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        base_url: str = PAPER_URL,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._policy = RetryPolicy(timeout, attempts, backoff, max_backoff)  # checks attempts >= 1
        self.base_url = normalise_base_url(base_url)
        self.paper = not is_live_url(self.base_url)
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff
        self._sleep = sleep
        self._secrets = tuple(s for s in (api_key, api_secret) if s)
        register_secrets(self._secrets)  # masked in every log line, whichever library writes it
        if not (api_key and api_secret):
            raise BrokerAuthError("Alpaca needs ALPACA_API_KEY and ALPACA_API_SECRET: one or both are not set")
        self._client = _trading_client(api_key, api_secret, self.paper, self.base_url, timeout)

    def __repr__(self) -> str:  # never the keys
        return f"AlpacaBroker({'paper' if self.paper else 'LIVE'}, {self.base_url})"

    # ------------------------------------------------------------------ Broker protocol

    def account(self) -> AccountState:
        account = self._call("account", self._client.get_account)
        return AccountState(
            equity=_float(account.equity),
            cash=_float(account.cash),
            buying_power=_float(account.buying_power),
            trading_blocked=bool(account.trading_blocked or account.account_blocked or account.trade_suspended_by_user),
            status=str(getattr(account.status, "value", account.status)),
        )

    def follow_market(self, bars: pd.DataFrame) -> None:
        """Alpaca's market is real: nothing to replay."""

    def prepare_session(self, session: date) -> None:
        """Alpaca settles fills and dividends itself."""

    def equity_history(self, start: date) -> list[tuple[date, float]]:
        """The account's closing equity per day from ``start`` (New York dates), from portfolio history.

        One ``GET /v2/account/portfolio/history?timeframe=1D`` from midnight New York of ``start``
        to today's date. Alpaca stamps each day at its start (epoch seconds), read here as a New
        York date; days whose equity is null, zero or negative (before the account was funded)
        are left out. Asked during a session, Alpaca appends the current equity as today's point.

        The answer is read as JSON rather than through alpaca-py's ``PortfolioHistory``, whose
        ``equity: List[float]`` refuses the whole history for one null day.
        """
        from alpaca.trading.requests import GetPortfolioHistoryRequest

        request = GetPortfolioHistoryRequest(
            timeframe="1D",
            start=datetime(start.year, start.month, start.day, tzinfo=NEW_YORK),
            date_end=max(start, datetime.now(NEW_YORK).date()),
        )
        raw = self._call(
            "portfolio history",
            lambda: self._client.get("/account/portfolio/history", request.to_request_fields()),
        )
        try:
            return _equity_history(raw, start)
        except ValueError as exc:
            raise BrokerError(self._scrub(f"unexpected answer from Alpaca's portfolio history: {exc}")) from None

    def now(self) -> datetime:
        clock = self._call("clock", self._client.get_clock)
        stamp: datetime = clock.timestamp
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=NEW_YORK)

    def sessions(self, start: date, end: date) -> list[SessionTimes]:
        from alpaca.trading.requests import GetCalendarRequest

        request = GetCalendarRequest(start=start, end=end)
        days = self._call("calendar", lambda: self._client.get_calendar(request))
        # alpaca-py parses "09:30" on the day into a naive datetime: New York wall time
        return [
            SessionTimes(day.date, _new_york(day.open), _new_york(day.close))
            for day in days
            if start <= day.date <= end
        ]

    def position(self, symbol: str) -> PositionState | None:
        position = self._call(f"position {symbol}", lambda: self._client.get_open_position(symbol), not_found=True)
        if position is None:
            return None
        qty = abs(_float(position.qty))
        side = getattr(position.side, "value", position.side)
        return PositionState(position.symbol, -qty if side == "short" else qty, _float(position.avg_entry_price))

    def order_by_client_id(self, client_order_id: str) -> OrderState | None:
        order = self._call(
            f"order {client_order_id}", lambda: self._client.get_order_by_client_id(client_order_id), not_found=True
        )
        return None if order is None else _order_state(order)

    def submit_market_order(
        self, symbol: str, qty: float, side: str, client_order_id: str, time_in_force: str
    ) -> OrderState:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        if side not in ("buy", "sell"):
            raise BrokerRejectedError(f"invalid order side {side!r}: expected buy or sell")
        if time_in_force not in TIME_IN_FORCE:
            raise BrokerRejectedError(f"invalid time_in_force {time_in_force!r}: expected one of {TIME_IN_FORCE}")
        if not (math.isfinite(qty) and qty > 0):
            raise BrokerRejectedError(f"invalid order quantity {qty!r}: must be positive")
        request = MarketOrderRequest(
            symbol=symbol,
            qty=qty,
            side=OrderSide(side),
            time_in_force=TimeInForce(time_in_force),
            client_order_id=client_order_id,
        )
        what = f"submit {client_order_id}"
        failure = ""
        for attempt in range(1, self.attempts + 1):
            try:
                if attempt > 1:  # the failed try may have reached Alpaca: never send the order twice
                    existing = self._existing_after_failure(client_order_id)
                    if existing is not None:
                        return existing
                return _order_state(self._once(lambda: self._client.submit_order(request)))
            except _DuplicateOrderError:
                existing = self.order_by_client_id(client_order_id)
                if existing is None:
                    raise BrokerRejectedError(
                        f"Alpaca says client_order_id {client_order_id} is taken, but no order has it"
                    ) from None
                log.info("alpaca_order_exists", client_order_id=client_order_id)
                return existing
            except TransientError as exc:
                failure = exc.detail
                self._wait(what, attempt, exc)
        try:  # the last try, too, may have created the order
            existing = self._existing_after_failure(client_order_id)
        except TransientError:
            existing = None
        if existing is not None:
            return existing
        raise BrokerUnavailableError(self._scrub(f"Alpaca {what} failed after {self.attempts} attempts: {failure}"))

    # ------------------------------------------------------------------ plumbing

    def _existing_after_failure(self, client_order_id: str) -> OrderState | None:
        """One look-up (no retries of its own) of an order whose submission may or may not have arrived."""
        found = self._once(lambda: self._client.get_order_by_client_id(client_order_id), not_found=True)
        if found is None:
            return None
        log.warning("alpaca_order_found_after_failure", client_order_id=client_order_id)
        return _order_state(found)

    @overload
    def _call(self, what: str, fn: Callable[[], T], *, not_found: Literal[False] = False) -> T: ...

    @overload
    def _call(self, what: str, fn: Callable[[], T], *, not_found: bool) -> T | None: ...

    def _call(self, what: str, fn: Callable[[], T], *, not_found: bool = False) -> T | None:
        try:
            return call_with_retries(
                lambda: self._once(fn, not_found=not_found),
                self._policy,
                event="alpaca_retry",
                what=what,
                sleep=self._sleep,
                scrub=self._scrub,
            )
        except RetriesExhaustedError as exc:
            raise BrokerUnavailableError(
                self._scrub(f"Alpaca {what} failed after {self.attempts} attempts: {exc.detail}")
            ) from None

    def _wait(self, what: str, attempt: int, exc: TransientError) -> None:
        pause(self._policy, attempt, exc, event="alpaca_retry", what=what, sleep=self._sleep, scrub=self._scrub)

    @overload
    def _once(self, fn: Callable[[], T], *, not_found: Literal[False] = False) -> T: ...

    @overload
    def _once(self, fn: Callable[[], T], *, not_found: bool) -> T | None: ...

    def _once(self, fn: Callable[[], T], *, not_found: bool = False) -> T | None:
        """One request: its result, None for an allowed 404, or a mapped error (TransientError to retry)."""
        from alpaca.common.exceptions import APIError
        from pydantic import ValidationError

        try:
            return fn()
        except APIError as exc:
            status = exc.status_code
            message = self._scrub(api_message(exc))
            if status == 404 and not_found:
                return None
            if status == 401:
                kind = "paper" if self.paper else "LIVE"
                raise BrokerAuthError(_AUTH_MESSAGE.format(kind=kind, url=self.base_url)) from None
            if is_transient_status(status):
                raise TransientError(f"HTTP {status}: {message}", retry_after(exc)) from None
            if status == 422 and "client_order_id must be unique" in message:
                raise _DuplicateOrderError(message) from None
            raise BrokerRejectedError(f"Alpaca refused (HTTP {status}): {message}") from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(self._scrub(transient_from_requests(exc).detail)) from None
        except ValidationError as exc:
            raise BrokerError(self._scrub(f"unexpected answer from Alpaca: {short(exc)}")) from None

    def _scrub(self, text: str) -> str:
        return mask_text(text, self._secrets)


def _trading_client(api_key: str, api_secret: str, paper: bool, base_url: str, timeout: Timeout) -> Any:
    from alpaca.trading.client import TradingClient

    client = TradingClient(api_key, api_secret, paper=paper, url_override=base_url)
    if not configure_alpaca_client(client, timeout):  # alpaca-py changed: refuse to run without timeouts
        raise BrokerError("alpaca-py's HTTP session is not where expected: cannot set a request timeout")
    return client


def _float(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def _equity_history(raw: Any, start: date) -> list[tuple[date, float]]:
    """``[(New York date, equity)]`` from a portfolio-history answer: positive equities from ``start``.

    Raises ValueError, with the reason, for an answer not of that shape.
    """
    stamps = raw.get("timestamp") if isinstance(raw, dict) else None
    equities = raw.get("equity") if isinstance(raw, dict) else None
    if not (isinstance(stamps, list) and isinstance(equities, list)):
        raise ValueError(short(raw))
    if len(stamps) != len(equities):
        raise ValueError(f"{len(stamps)} timestamps but {len(equities)} equities")
    days: dict[date, float] = {}
    for stamp, equity in zip(stamps, equities, strict=True):
        try:
            day = datetime.fromtimestamp(int(stamp), NEW_YORK).date()
            value = math.nan if equity is None else float(equity)
        except (TypeError, ValueError, OverflowError, OSError):
            raise ValueError(f"timestamp {stamp!r}, equity {equity!r}") from None
        if day >= start and math.isfinite(value) and value > 0:
            days[day] = value  # a day twice (today's live point): the later one
    return sorted(days.items())


def _new_york(moment: datetime) -> datetime:
    return moment.replace(tzinfo=NEW_YORK) if moment.tzinfo is None else moment.astimezone(NEW_YORK)


def _order_state(order: Any) -> OrderState:
    def value(field: Any) -> str:
        return str(getattr(field, "value", field))

    return OrderState(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=value(order.side),
        qty=_float(order.qty),
        status=value(order.status),
        filled_qty=_float(order.filled_qty),
        filled_avg_price=float(order.filled_avg_price) if order.filled_avg_price not in (None, "") else None,
        time_in_force=value(order.time_in_force),
    )
